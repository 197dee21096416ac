import type { Command } from 'commander';
import { UserError } from '../errors.ts';

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('(not implemented yet)')
    .allowUnknownOption()
    .action(() => {
      throw new UserError('gemma-tune train is not implemented yet');
    });
}
