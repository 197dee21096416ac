import type { Command } from 'commander';
import { UserError } from '../errors.ts';

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('(not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      throw new UserError('gemma-tune generate is not implemented yet');
    });
}
