// Ollama Modelfile next to an exported GGUF: the Gemma turn format as a Go template and the two stop tokens.
import path from 'node:path';

/** Ollama's Go-template rendering of the Gemma 3 chat template (system text folded into the first user turn). */
export const GEMMA_OLLAMA_TEMPLATE = `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}`;

export function modelfileText(ggufFile: string): string {
  return [
    `FROM ./${path.basename(ggufFile)}`,
    '',
    `TEMPLATE """${GEMMA_OLLAMA_TEMPLATE}"""`,
    '',
    'PARAMETER stop "<end_of_turn>"',
    'PARAMETER stop "<eos>"',
    '',
  ].join('\n');
}
