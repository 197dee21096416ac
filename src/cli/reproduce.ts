// `gemma-tune reproduce RUN_DIR`: re-run a finished training run and check that it is bit-identical (for CI).
import type { Command } from 'commander';

export async function runReproduce(runDir: string, o: { keep?: boolean; quiet?: boolean }): Promise<number> {
  const { reproduce } = await import('../train/reproduce.ts');
  const { chooseMode, makeReporter } = await import('../train/terminal.ts');
  const out = (s: string) => process.stdout.write(s + '\n');
  out(`reproducing ${runDir} (re-running its recipe.yaml with the seed and backend from manifest.json)...`);
  const reporter = o.quiet ? undefined : makeReporter(chooseMode({ isTTY: process.stdout.isTTY === true }));
  const r = await reproduce(runDir, { keep: o.keep, reporter });
  for (const d of r.dataChanged) out(`data changed: ${d}`);
  if (r.kernelsDiffer) out(`warning: ${r.kernelsDiffer}`);
  if (r.match) {
    out(`REPRODUCED: ${r.rowsCompared} metrics rows identical (loss, grad_norm, lr, step, epoch, tokens)` +
      (r.weightsMatch ? ', final weights bit-identical' : '') + ` on backend ${r.backend}`);
    return 0;
  }
  out(`NOT REPRODUCED on backend ${r.backend}:`);
  for (const m of r.mismatches) out(`  ${m}`);
  if (o.keep) out(`re-run kept in ${r.rerunDir}`);
  return 1;
}

export function registerReproduce(program: Command): void {
  program
    .command('reproduce')
    .description('Re-run a finished training run from its recipe.yaml and manifest.json; exit 1 unless every metric and the final weights match bit for bit')
    .argument('<run_dir>', 'a run directory written by gemma-tune train')
    .option('--keep', 'keep the re-run directory (printed) instead of deleting it')
    .option('--quiet', 'do not print the re-run\'s progress')
    .action(async (runDir: string, o: { keep?: boolean; quiet?: boolean }) => {
      process.exitCode = await runReproduce(runDir, o);
    });
}
