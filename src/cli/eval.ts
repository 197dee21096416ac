import type { Command } from 'commander';
import { UserError } from '../errors.ts';

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('(not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      throw new UserError('gemma-tune eval is not implemented yet');
    });
}
