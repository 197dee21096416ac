// Gemma 3's chat template (the training renderer: tokenizer_config.json's Jinja template, run by @huggingface/jinja)
// rewritten as an Ollama TEMPLATE, i.e. for Go's text/template with Ollama's data: .Messages (Role, Content) after
// Ollama prepends the Modelfile SYSTEM as a system message. It renders byte for byte what renderChat renders, minus
// the leading <bos> (Ollama's tokenizer adds BOS itself because the GGUF says add_bos_token):
// - a system message first is folded into the first turn as `SYSTEM\n\n` (not trimmed, as in the Jinja template);
// - every turn's content is trimmed like Jinja's `| trim` in @huggingface/jinja, i.e. JavaScript's String.trim
//   (text/template has no trim, so "trim"/"rtrim" below strip one whitespace character per recursion by bytes);
// - `assistant` becomes `model`, any other role is written as is (a later system message is a `system` turn);
// - after a last non-assistant message comes the generation prompt `<start_of_turn>model\n`; a last assistant
//   message stays open (no <end_of_turn>), so Ollama continues it.
// Only built-in text/template functions are used (Ollama adds `json`, which is not needed). The text contains no
// literal non-printable characters (Ollama's Modelfile parser drops them) and never `"""`.

// JavaScript's String.prototype.trim whitespace: WhiteSpace (TAB VT FF SP NBSP ZWNBSP and category Zs) and
// LineTerminator (LF CR LS PS), grouped by UTF-8 length. U+0085 and U+180E are not in it (Python's str.strip differs).
const WS1 = [' ', '\\t', '\\n', '\\v', '\\f', '\\r'];
const WS2 = ['\\u00a0'];
const WS3 = [
  '\\u1680', '\\u2000', '\\u2001', '\\u2002', '\\u2003', '\\u2004', '\\u2005', '\\u2006', '\\u2007', '\\u2008',
  '\\u2009', '\\u200a', '\\u2028', '\\u2029', '\\u202f', '\\u205f', '\\u3000', '\\ufeff',
];
const q = (xs: string[]) => xs.map((x) => `"${x}"`).join(' ');

/** The characters (as JS strings) that the template's trim removes, for tests. */
const ESC: Record<string, string> = { t: '\t', n: '\n', v: '\v', f: '\f', r: '\r' };
export const TRIMMED_CHARACTERS: readonly string[] = [...WS1, ...WS2, ...WS3].map((x) =>
  x.replace(/\\(u[0-9a-f]{4}|[tnvfr])/g, (_, e: string) => (e.length > 1 ? String.fromCharCode(parseInt(e.slice(1), 16)) : ESC[e])));

// "trim": drop leading whitespace, one character per call, then hand over to "rtrim". `slice . (len (slice . n))`
// is the last n bytes (text/template has no arithmetic); UTF-8 lead bytes make the byte comparisons unambiguous.
const TRIM = `{{- define "trim" }}
  {{- if eq (len .) 0 }}
  {{- else if eq (slice . 0 1) ${q(WS1)} }}{{ template "trim" (slice . 1) }}
  {{- else if and (ge (len .) 2) (eq (slice . 0 2) ${q(WS2)}) }}{{ template "trim" (slice . 2) }}
  {{- else if and (ge (len .) 3) (eq (slice . 0 3) ${q(WS3)}) }}{{ template "trim" (slice . 3) }}
  {{- else }}{{ template "rtrim" . }}
  {{- end }}
{{- end }}
{{- define "rtrim" }}
  {{- if eq (len .) 0 }}
  {{- else if eq (slice . (len (slice . 1))) ${q(WS1)} }}{{ template "rtrim" (slice . 0 (len (slice . 1))) }}
  {{- else if and (ge (len .) 2) (eq (slice . (len (slice . 2))) ${q(WS2)}) }}{{ template "rtrim" (slice . 0 (len (slice . 2))) }}
  {{- else if and (ge (len .) 3) (eq (slice . (len (slice . 3))) ${q(WS3)}) }}{{ template "rtrim" (slice . 0 (len (slice . 3))) }}
  {{- else }}{{ . }}
  {{- end }}
{{- end }}`;

// All template whitespace is trimmed by {{- -}}; every byte of output is written by an action.
const TURNS = `{{- $system := "" }}
{{- $hasSystem := false }}
{{- range $i, $m := .Messages }}
  {{- $last := eq (len (slice $.Messages $i)) 1 }}
  {{- if and (eq $i 0) (eq $m.Role "system") }}
    {{- $system = $m.Content }}
    {{- $hasSystem = true }}
  {{- else }}
    {{- "<start_of_turn>" }}
    {{- if eq $m.Role "assistant" }}{{ "model" }}{{ else }}{{ $m.Role }}{{ end }}
    {{- "\\n" }}
    {{- if and $hasSystem (eq $i 1) }}{{ $system }}{{ "\\n\\n" }}{{ end }}
    {{- template "trim" $m.Content }}
    {{- if not (and $last (eq $m.Role "assistant")) }}{{ "<end_of_turn>\\n" }}{{ end }}
    {{- if and $last (ne $m.Role "assistant") }}{{ "<start_of_turn>model\\n" }}{{ end }}
  {{- end }}
{{- end }}`;

/** The Modelfile TEMPLATE. */
export const GEMMA_OLLAMA_TEMPLATE = `${TRIM}\n${TURNS}`;
