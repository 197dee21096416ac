// Renders Ollama Modelfile templates with Go's text/template, the way Ollama prepares a chat prompt, so the test
// suite can compare the result byte for byte with gemma-tune's training renderer. Standard library only.
//
// Input (stdin, JSON):  {"cases": [{"id": "...", "modelfile": "/path/Modelfile", "messages": [{"role", "content"}]}]}
// Output (stdout, JSON): {"modelfiles": {"/path/Modelfile": {"template", "system", "parameters"}},
//                         "results": [{"id", "prompt", "error"}]}
//
// What is modelled from Ollama (read in ollama/ollama, not copied):
//   - parser/parser.go: a Modelfile is a list of `COMMAND value` lines; `PARAMETER name value`; a value may be a
//     bare word run, "..." or """...""" (which may span lines); only printable runes, spaces, tabs and line breaks
//     are kept; comments start with '#'.
//   - server/routes.go (chat): the Modelfile SYSTEM is prepended as a system message when the request's messages
//     do not start with one.
//   - template/template.go: templates are parsed with Option("missingkey=zero") and a `json` function; a template
//     that uses .Messages is executed once with System (all system messages joined by "\n\n"), Messages (runs of
//     messages with the same role merged with "\n\n"), Tools, Response "" and the think flags.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/template"
)

type message struct {
	Role      string
	Content   string
	Thinking  string
	Images    []string
	ToolCalls []any
	ToolName  string
}

type modelfile struct {
	Template   string              `json:"template"`
	System     *string             `json:"system"`
	Parameters map[string][]string `json:"parameters"`
}

type inCase struct {
	ID        string `json:"id"`
	Modelfile string `json:"modelfile"`
	Messages  []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

type outCase struct {
	ID     string `json:"id"`
	Prompt string `json:"prompt"`
	Error  string `json:"error,omitempty"`
}

// unquoteValue strips """...""" or "..." around a value; ok is false while a quote is still open.
func unquoteValue(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, `"""`):
		if len(s) >= 6 && strings.HasSuffix(s, `"""`) {
			return s[3 : len(s)-3], true
		}
		return "", false
	case strings.HasPrefix(s, `"`):
		if len(s) >= 2 && strings.HasSuffix(s, `"`) {
			return s[1 : len(s)-1], true
		}
		return "", false
	}
	return s, true
}

func isLetter(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') }

// parseModelfile reads the commands of a Modelfile (see the rules at the top of this file).
func parseModelfile(text string) (*modelfile, error) {
	const (
		between = iota
		comment
		name
		param
		value
	)
	mf := &modelfile{Parameters: map[string][]string{}}
	state := between
	var cmd, pname string
	var buf strings.Builder
	emit := func(v string) {
		switch strings.ToLower(cmd) {
		case "template":
			mf.Template = v
		case "system":
			s := v
			mf.System = &s
		case "parameter":
			mf.Parameters[pname] = append(mf.Parameters[pname], v)
		}
	}
	line := 1
	for _, r := range strings.TrimPrefix(text, "\ufeff") {
		if r == '\n' {
			line++
		}
		switch state {
		case between:
			if r == '#' {
				state = comment
			} else if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
				cmd = string(r)
				state = name
			}
		case comment:
			if r == '\n' || r == '\r' {
				state = between
			}
		case name:
			if isLetter(r) {
				cmd += string(r)
			} else if r == ' ' || r == '\t' {
				if strings.ToLower(cmd) == "parameter" {
					pname, state = "", param
				} else {
					state = value
				}
				buf.Reset()
			} else {
				return nil, fmt.Errorf("line %d: bad command %q", line, cmd+string(r))
			}
		case param:
			if isLetter(r) || (r >= '0' && r <= '9') || r == '_' {
				pname += string(r)
			} else if r == ' ' || r == '\t' {
				state = value
				buf.Reset()
			} else {
				return nil, fmt.Errorf("line %d: bad parameter name", line)
			}
		case value:
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				v, ok := unquoteValue(strings.TrimSpace(buf.String()))
				if ok && (r == '\n' || r == '\r') {
					emit(v)
					state = between
					continue
				}
				buf.WriteRune(r)
			} else if strconv.IsPrint(r) {
				buf.WriteRune(r)
			}
		}
	}
	if state == value {
		v, ok := unquoteValue(strings.TrimSpace(buf.String()))
		if !ok {
			return nil, errors.New("unterminated quote at end of file")
		}
		emit(v)
	} else if state != between && state != comment {
		return nil, errors.New("unexpected end of file")
	}
	return mf, nil
}

// collate: all system contents joined, and consecutive messages of one role merged.
func collate(msgs []message) (string, []*message) {
	var system []string
	var out []*message
	for i := range msgs {
		m := msgs[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role && m.Role != "tool" {
			out[n-1].Content += "\n\n" + m.Content
		} else {
			out = append(out, &m)
		}
	}
	return strings.Join(system, "\n\n"), out
}

func render(mf *modelfile, msgs []message) (string, error) {
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(template.FuncMap{
		"json": func(v any) string { b, _ := json.Marshal(v); return string(b) },
	}).Parse(mf.Template)
	if err != nil {
		return "", err
	}
	if len(msgs) > 0 && msgs[0].Role != "system" && mf.System != nil && *mf.System != "" {
		msgs = append([]message{{Role: "system", Content: *mf.System}}, msgs...)
	}
	system, collated := collate(msgs)
	var b strings.Builder
	err = tmpl.Execute(&b, map[string]any{
		"System": system, "Messages": collated, "Tools": nil, "Response": "", "Think": false, "IsThinkSet": false,
	})
	return b.String(), err
}

func main() {
	var in struct {
		Cases []inCase `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	files := map[string]*modelfile{}
	results := []outCase{}
	for _, c := range in.Cases {
		mf, seen := files[c.Modelfile]
		if !seen {
			text, err := os.ReadFile(c.Modelfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if mf, err = parseModelfile(string(text)); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", c.Modelfile, err)
				os.Exit(2)
			}
			files[c.Modelfile] = mf
		}
		msgs := make([]message, len(c.Messages))
		for i, m := range c.Messages {
			msgs[i] = message{Role: m.Role, Content: m.Content}
		}
		prompt, err := render(mf, msgs)
		r := outCase{ID: c.ID, Prompt: prompt}
		if err != nil {
			r.Error = err.Error()
		}
		results = append(results, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"modelfiles": files, "results": results}); err != nil {
		os.Exit(2)
	}
}
