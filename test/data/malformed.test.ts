// The malformed-input corpus (test/fixtures/data): every file's exact `FILE:LINE: path: message` output.
// Most cases go through scanFile (the function `gemma-tune validate` and the trainer's loader both use);
// the CLI cases at the end run the real executable and check stderr, stdout and the exit code.
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type GemmaTokenizer } from '../../src/data/tokenizer.ts';
import { scanFile, type ScanOptions } from '../../src/data/scan.ts';
import { formatIssue } from '../../src/data/issues.ts';
import { UserError } from '../../src/errors.ts';

const FIX = path.resolve(__dirname, '../fixtures/data');
const ROOT = path.resolve(__dirname, '../..');
let tok: GemmaTokenizer;
beforeAll(() => {
  tok = loadTokenizer();
});

const defaults: ScanOptions = { format: 'auto', maxLength: 512, trainOn: 'assistant', truncation: 'truncate' };

/** All problem lines for a fixture, shown under its base name. */
async function problems(name: string, o: Partial<ScanOptions> = {}): Promise<string[]> {
  try {
    const scan = await scanFile(path.join(FIX, name), tok, { ...defaults, ...o, displayName: name });
    return scan.issues.map(formatIssue);
  } catch (e) {
    if (e instanceof UserError) return [e.message];
    throw e;
  }
}

const ALT = 'roles must alternate user/assistant, starting with user';
const ROLES = '"user" | "assistant" | "system"';

const corpus: [string, string[], Partial<ScanOptions>?][] = [
  ['bad-role.jsonl', [`bad-role.jsonl:17: messages[2].role: expected ${ROLES}, got "bot" (map other names with data.roles)`]],
  ['invalid-json.jsonl', [
    "invalid-json.jsonl:1: invalid JSON: unexpected token ']'",
    'invalid-json.jsonl:2: invalid JSON: unterminated string at column 49',
    'invalid-json.jsonl:3: invalid JSON: unexpected end of line',
    "invalid-json.jsonl:4: invalid JSON: expected property name or '}' at column 2",
    'invalid-json.jsonl:5: invalid JSON: unexpected non-whitespace character after JSON at column 18',
    "invalid-json.jsonl:6: invalid JSON: unexpected token 'm'",
  ]],
  ['empty.jsonl', ['empty.jsonl: file is empty']],
  ['blank-only.jsonl', ['blank-only.jsonl: no examples (only 3 blank lines)']],
  ['a-directory.jsonl', ['a-directory.jsonl: is a directory, expected a JSONL file']],
  ['does-not-exist.jsonl', ['does-not-exist.jsonl: no such file']],
  ['non-utf8.jsonl', [
    'non-utf8.jsonl:2: not valid UTF-8 (byte 0xE9 at byte 47 of the line); save the file as UTF-8',
    'non-utf8.jsonl:3: not valid UTF-8 (byte 0xFF at byte 1 of the line); save the file as UTF-8',
  ]],
  ['wrong-types.jsonl', [
    'wrong-types.jsonl:1: messages: expected array, got string',
    'wrong-types.jsonl:2: messages[0].content: expected string, got number',
    `wrong-types.jsonl:2: messages[1].role: expected ${ROLES}, got null`,
    'wrong-types.jsonl:3: messages[0]: expected object, got array',
    'wrong-types.jsonl:4: messages[0].content[0]: expected a content part {"type": "text", "text": ...}, got string',
  ]],
  ['missing-keys.jsonl', [
    'missing-keys.jsonl:1: messages[0].content: missing (expected string)',
    `missing-keys.jsonl:1: messages[1].role: missing (expected ${ROLES})`,
    `missing-keys.jsonl:2: messages[0].role: missing (expected ${ROLES})`,
    'missing-keys.jsonl:2: messages[0].content: missing (expected string)',
  ]],
  ['unknown-keys.jsonl', [
    'unknown-keys.jsonl:1: id: unknown key (allowed: "messages")',
    'unknown-keys.jsonl:2: messages[0].content: missing (expected string)',
    'unknown-keys.jsonl:2: messages[0].contnet: unknown key, did you mean "content"?',
    'unknown-keys.jsonl:2: messages[1].name: unknown key (allowed: "role", "content", "train", "weight")',
  ]],
  ['empty-content.jsonl', [
    'empty-content.jsonl:1: messages[0].content: must not be empty',
    'empty-content.jsonl:2: messages[1].content: must not be only whitespace',
    'empty-content.jsonl:3: messages: must not be empty',
  ]],
  ['no-assistant.jsonl', [
    'no-assistant.jsonl:1: messages: no "assistant" message (nothing to train on)',
    'no-assistant.jsonl:2: messages: no "assistant" message (nothing to train on)',
  ]],
  ['not-alternating.jsonl', [
    `not-alternating.jsonl:1: messages[1].role: expected "assistant" (${ALT}), got "user"`,
    `not-alternating.jsonl:2: messages[0].role: expected "user" (${ALT}), got "assistant"`,
    `not-alternating.jsonl:3: messages[1].role: expected "user" (${ALT}), got "model"`,
  ]],
  ['system-not-first.jsonl', [
    'system-not-first.jsonl:1: messages[1].role: "system" is only allowed as the first message',
    'system-not-first.jsonl:2: messages[1].role: "system" is only allowed as the first message',
  ]],
  ['not-object.jsonl', [
    'not-object.jsonl:1: expected a JSON object, got array',
    'not-object.jsonl:2: expected a JSON object, got string',
    'not-object.jsonl:3: expected a JSON object, got number',
    'not-object.jsonl:4: expected a JSON object, got null',
  ]],
  ['mixed-formats.jsonl', [
    'mixed-formats.jsonl:2: this line is in "text" format but the file is in "messages" format (detected on line 1); use one format per file',
    'mixed-formats.jsonl:3: this line is in "prompt_completion" format but the file is in "messages" format (detected on line 1); use one format per file',
  ]],
  ['unknown-format.jsonl', [
    'unknown-format.jsonl:1: expected a "messages", "conversations", "prompt"/"completion" or "text" key, got "input", "output"',
    'unknown-format.jsonl:2: expected a "messages", "conversations", "prompt"/"completion" or "text" key, got an empty object',
    'unknown-format.jsonl:4: messages: missing (expected array)',
    'unknown-format.jsonl:4: input: unknown key (allowed: "messages")',
    'unknown-format.jsonl:4: output: unknown key (allowed: "messages")',
  ]],
  ['prompt-completion-bad.jsonl', [
    'prompt-completion-bad.jsonl:1: completion: expected string, got array',
    'prompt-completion-bad.jsonl:2: completion: missing (expected string)',
    'prompt-completion-bad.jsonl:3: completion: must not be empty',
    'prompt-completion-bad.jsonl:4: prompt: expected string, got number',
  ]],
  ['prompt-completion-lists-bad.jsonl', [
    `prompt-completion-lists-bad.jsonl:1: completion[0].role: expected "assistant" (${ALT}), got "user"`,
    'prompt-completion-lists-bad.jsonl:1: completion: no "assistant" message (nothing to train on)',
    `prompt-completion-lists-bad.jsonl:2: completion[0].role: expected "user" (${ALT}), got "assistant"`,
    'prompt-completion-lists-bad.jsonl:3: prompt: must not be empty',
  ]],
  ['text-bad.jsonl', [
    'text-bad.jsonl:1: text: expected string, got number',
    'text-bad.jsonl:2: text: must not be empty',
    'text-bad.jsonl:3: meta: unknown key (allowed: "text")',
    'text-bad.jsonl:4: text: missing (expected string)',
    'text-bad.jsonl:4: txt: unknown key, did you mean "text"?',
  ]],
  ['too-long.jsonl', ['too-long.jsonl:2: 43 tokens, more than max_length 20 (truncation: error)'], { maxLength: 20, truncation: 'error' }],
  ['bom-crlf-valid.jsonl', [
    'bom-crlf-valid.jsonl:1: text: missing (expected string)',
    'bom-crlf-valid.jsonl:1: messages: unknown key (allowed: "text")',
    'bom-crlf-valid.jsonl:3: text: missing (expected string)',
    'bom-crlf-valid.jsonl:3: messages: unknown key (allowed: "text")',
  ], { format: 'text' }],
];

describe('malformed corpus (library)', () => {
  it('has at least 20 cases', () => expect(corpus.length).toBeGreaterThanOrEqual(20));
  for (const [name, expected, o] of corpus) {
    it(`${name}${o ? ` ${JSON.stringify(o)}` : ''}`, async () => {
      expect(await problems(name, o)).toEqual(expected);
    });
  }

  it('a valid file with a BOM, CRLF line ends and blank lines', async () => {
    const scan = await scanFile(path.join(FIX, 'bom-crlf-valid.jsonl'), tok, { ...defaults, displayName: 'x' });
    expect(scan.issues).toEqual([]);
    expect(scan.stats).toMatchObject({ lines: 5, blankLines: 3, examples: 2, format: 'messages', roles: { system: 1, user: 3, assistant: 3 } });
  });

  it('control tokens written in the text are valid but warned about', async () => {
    const scan = await scanFile(path.join(FIX, 'control-tokens.jsonl'), tok, { ...defaults, displayName: 'control-tokens.jsonl' });
    expect(scan.issues).toEqual([]);
    expect(scan.warnings.map(formatIssue)).toEqual([
      'control-tokens.jsonl:1: messages[0].content: contains "<end_of_turn>", which is tokenized as a Gemma control token, not as text',
      'control-tokens.jsonl:2: messages[1].content: contains "<start_of_turn>", which is tokenized as a Gemma control token, not as text',
    ]);
    expect(tok.encode('Say <end_of_turn> please')).toContain(tok.endOfTurnId);
  });

  it('does not load the tokenizer when no line is valid', async () => {
    let loaded = 0;
    const scan = await scanFile(path.join(FIX, 'invalid-json.jsonl'), () => { loaded++; return tok; }, defaults);
    expect(scan.issues).toHaveLength(6);
    expect(loaded).toBe(0);
  });
});

const run = promisify(execFile);
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [path.join(ROOT, 'bin/gemma-tune.js'), 'validate', ...args], { cwd: FIX, env: { ...process.env, NO_COLOR: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('malformed corpus (real CLI)', () => {
  it('reports every invalid line of several files and exits 1', async () => {
    const r = await cli('bad-role.jsonl', 'not-alternating.jsonl', 'invalid-json.jsonl', 'does-not-exist.jsonl', 'a-directory.jsonl', 'empty.jsonl');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe([
      `bad-role.jsonl:17: messages[2].role: expected ${ROLES}, got "bot" (map other names with data.roles)`,
      'bad-role.jsonl: invalid: 1 problem on 1 line',
      `not-alternating.jsonl:1: messages[1].role: expected "assistant" (${ALT}), got "user"`,
      `not-alternating.jsonl:2: messages[0].role: expected "user" (${ALT}), got "assistant"`,
      `not-alternating.jsonl:3: messages[1].role: expected "user" (${ALT}), got "model"`,
      'not-alternating.jsonl: invalid: 3 problems on 3 lines',
      "invalid-json.jsonl:1: invalid JSON: unexpected token ']'",
      'invalid-json.jsonl:2: invalid JSON: unterminated string at column 49',
      'invalid-json.jsonl:3: invalid JSON: unexpected end of line',
      "invalid-json.jsonl:4: invalid JSON: expected property name or '}' at column 2",
      'invalid-json.jsonl:5: invalid JSON: unexpected non-whitespace character after JSON at column 18',
      "invalid-json.jsonl:6: invalid JSON: unexpected token 'm'",
      'invalid-json.jsonl: invalid: 6 problems on 6 lines',
      'does-not-exist.jsonl: no such file',
      'a-directory.jsonl: is a directory, expected a JSONL file',
      'empty.jsonl: file is empty',
      '',
    ].join('\n'));
  });

  it('a single non-UTF-8 file: exit 1, no stack trace', async () => {
    const r = await cli('non-utf8.jsonl');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe([
      'non-utf8.jsonl:2: not valid UTF-8 (byte 0xE9 at byte 47 of the line); save the file as UTF-8',
      'non-utf8.jsonl:3: not valid UTF-8 (byte 0xFF at byte 1 of the line); save the file as UTF-8',
      'non-utf8.jsonl: invalid: 2 problems on 2 lines',
      '',
    ].join('\n'));
  });

  it('--truncation error with --max-length', async () => {
    const r = await cli('too-long.jsonl', '--max-length', '20', '--truncation', 'error');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('too-long.jsonl:2: 43 tokens, more than max_length 20 (truncation: error)\ntoo-long.jsonl: invalid: 1 problem on 1 line\n');
  });

  it('usage errors exit 2', async () => {
    const r = await cli('bad-role.jsonl', '--train-on', 'everything');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: option '--train-on <mode>' argument 'everything' is invalid. Allowed choices are assistant, last, all.");
    const r2 = await cli('bad-role.jsonl', '--max-length', '0');
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--max-length must be a positive integer, got "0"');
  });
});
