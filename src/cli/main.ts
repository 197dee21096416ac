import { Command, CommanderError } from 'commander';
import { UserError } from '../errors.ts';
import { registerValidate } from './validate.ts';
import { registerTrain } from './train.ts';
import { registerEval } from './eval.ts';
import { registerExport } from './export.ts';
import { registerGenerate } from './generate.ts';
import { registerReproduce } from './reproduce.ts';
import { registerChat } from './chat.ts';
import { registerServe } from './serve.ts';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('gemma-tune')
    .description('Fine-tune Gemma 3 270M for one narrow task on a laptop or CI runner, and ship it as a 4-bit GGUF.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerValidate(program);
  registerTrain(program);
  registerEval(program);
  registerExport(program);
  registerGenerate(program);
  registerReproduce(program);
  registerChat(program);
  registerServe(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

/** Run the CLI; returns the process exit code (0 ok, 1 invalid input or failed check, 2 usage error). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return 2; // commander already printed the message
    }
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message}\n`);
      return e.exitCode;
    }
    if (process.env.GEMMA_TUNE_DEBUG) throw e;
    process.stderr.write(`error: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}
