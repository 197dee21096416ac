import type { Command } from 'commander';
import { UserError } from '../errors.ts';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('(not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      throw new UserError('gemma-tune export is not implemented yet');
    });
}
