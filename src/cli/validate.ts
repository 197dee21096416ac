import type { Command } from 'commander';
import { UserError } from '../errors.ts';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('(not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      throw new UserError('gemma-tune validate is not implemented yet');
    });
}
