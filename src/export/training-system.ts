// The system prompt a run trained with, when its training data used one and the same system message in every
// example: that is what the exported model expects to see, so the Modelfile's SYSTEM and the chat/browser
// defaults supply it when the user gives none.
import fs from 'node:fs';
import path from 'node:path';
import { readJsonlLines } from '../data/jsonl.ts';
import { detectFormat, parseExample } from '../data/formats.ts';
import { RunDir } from '../io/run-dir.ts';

/** The shared system prompt of every valid example of `file`, or null (no chat data, or examples differ). */
export async function sharedSystemPrompt(file: string): Promise<string | null> {
  let system: string | null = null;
  let examples = 0;
  for await (const l of readJsonlLines(file)) {
    if (l.kind !== 'text') continue;
    let value: unknown;
    try {
      value = JSON.parse(l.text);
    } catch {
      continue; // invalid lines never reached training
    }
    const format = detectFormat(value);
    if (!format || format === 'text') return null;
    const ex = parseExample(value, format, file, l.line).example;
    if (!ex?.messages) continue;
    const first = ex.messages[0];
    if (first.role !== 'system') return null;
    if (system !== null && first.content !== system) return null;
    system = first.content;
    examples++;
  }
  return examples > 0 ? system : null;
}

/** The training system prompt of a run directory (from its recipe.yaml `data.train`), or null. */
export async function trainingSystemPrompt(runDir: string): Promise<string | null> {
  const run = new RunDir(runDir);
  const file = run.recipeFile;
  const recipe = run.readRecipeYaml() as { data?: { train?: unknown } } | null;
  const train = recipe?.data?.train;
  if (typeof train !== 'string') return null;
  const data = path.resolve(runDir, train);
  if (!fs.existsSync(data)) {
    process.stderr.write(`note: ${file}: data.train ${data} is gone; the Modelfile gets no SYSTEM line\n`);
    return null;
  }
  return sharedSystemPrompt(data);
}
