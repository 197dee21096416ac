// `gemma-tune train RECIPE`: run (or resume) a fine-tune. Ctrl-C finishes the current step, writes a resumable
// checkpoint and exits 130; a second Ctrl-C quits at once.
import type { Command } from 'commander';
import { Option } from 'commander';
import { collectOverride, loadRecipe } from '../recipe/recipe.ts';
import { BACKENDS } from '../recipe/schema.ts';

export interface TrainCliOptions {
  out?: string;
  resume?: string | true;
  overwrite?: boolean;
  set?: string[];
  backend?: string;
  json?: boolean;
}

export async function runTrain(recipeFile: string, o: TrainCliOptions): Promise<number> {
  const overrides = [...(o.set ?? [])];
  if (o.backend) overrides.push(`backend=${o.backend}`);
  const recipe = loadRecipe(recipeFile, overrides);
  // Loaded here, not at the top: `gemma-tune --help` should not pay for tfjs.
  const { train } = await import('../train/trainer.ts');
  const { chooseMode, makeReporter } = await import('../train/terminal.ts');
  const reporter = makeReporter(chooseMode({ json: o.json, isTTY: process.stdout.isTTY === true }));
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) {
      process.stderr.write('\ninterrupted again: quitting without a checkpoint\n');
      process.exit(130);
    }
    reporter.note('\nCtrl-C: finishing this step and writing a resumable checkpoint (Ctrl-C again to quit now)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await train(recipe, { outDir: o.out, resume: o.resume, overwrite: o.overwrite, reporter, signal: controller.signal });
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('Fine-tune a model as a recipe describes; writes metrics, loss plots, checkpoints and a summary to the run directory')
    .argument('<recipe>', 'recipe YAML file (see recipes/quickstart.yaml)')
    .option('--out <dir>', 'run directory (default: the recipe\'s output_dir, i.e. runs/<name>)')
    .option('--resume [run_dir]', 'continue from the latest checkpoint of a run (default: the run directory of this recipe / --out)')
    .option('--overwrite', 'replace the run already in the run directory (only what gemma-tune wrote there is removed)')
    .option('--set <key=value>', 'override a recipe key, e.g. --set training.learning_rate=1e-4 (repeatable)', collectOverride, [])
    .addOption(new Option('--backend <name>', 'tfjs backend (overrides the recipe)').choices([...BACKENDS]))
    .option('--json', 'print metrics rows as JSON lines on stdout (progress and summary go to stderr)')
    .addHelpText('after', `
Writes into the run directory: recipe.yaml (resolved), manifest.json, metrics.jsonl, loss.svg/loss.png,
checkpoints/{epoch-N|step-N,best,final}/ and summary.json. The run directory must be new or empty, or a previous
run: --resume continues it, --overwrite replaces it (other files in it are kept). Exit codes: 0 done, 1 invalid input or
training diverged (NaN/Inf loss, or above 10 × the first loss + 10), 2 usage error, 130 interrupted (resume with --resume).`)
    .action(async (recipe: string, o: TrainCliOptions) => {
      process.exitCode = await runTrain(recipe, o);
    });
}
