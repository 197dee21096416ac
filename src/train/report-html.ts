// report.html: the run on one page, for people who would rather look than read JSON. One self-contained file (CSS
// inline, the loss plot inlined as SVG, no script, a Content-Security-Policy that forbids loading anything), built
// from what the run folder holds: recipe.yaml, manifest.json, summary.json, metrics.jsonl, samples.jsonl, loss.svg
// and eval/report.json. Training rewrites it (atomically) at every evaluation and at the end; `gemma-tune eval RUN`
// rewrites it after adding eval/report.json.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { Manifest, RunDir } from '../io/run-dir.ts';
import type { EvalReport } from '../eval/evaluate.ts';
import { readMetrics, type MetricsRow, type TrainRow, type ValRow } from './metrics.ts';
import { readSamples, type SampleRow } from './samples-file.ts';
import type { Summary } from './summary.ts';

export interface ReportInput {
  /** The run's resolved recipe (recipe.yaml as data). */
  recipe: Record<string, unknown> | null;
  manifest: Manifest | null;
  /** summary.json, or the provisional one of a run in progress (status "running"). */
  summary: Summary | null;
  metrics: MetricsRow[];
  samples: SampleRow[];
  /** loss.svg's text. */
  lossSvg: string | null;
  /** eval/report.json (`gemma-tune eval RUN ...`, or eval.generate at the end of training). */
  evalReport: EvalReport | null;
  /** When the page is written (ISO time). */
  writtenAt: string;
}

const esc = (v: unknown) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (v: number | null | undefined, d = 4) => (v === null || v === undefined ? '–' : Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const epochText = (e: number) => (Number.isInteger(e) ? String(e) : e.toFixed(2));

function get(obj: unknown, dotted: string): unknown {
  let cur = obj;
  for (const k of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

const CSS = `
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6478; --line: #dde2ea; --bg: #f6f7f9; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; margin-top: 18px; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 16px 0 6px; font-size: 15px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.kv th { width: 220px; }
figure { margin: 0; }
figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 13px; font-weight: 600; background: #e8eefc; color: #1b4db1; }
.badge.completed, .badge.early_stopped { background: #e3f5e7; color: #1d7a35; }
.badge.failed, .badge.diverged { background: #fde7e7; color: #b3261e; }
.badge.interrupted { background: #fff2d9; color: #8a5a00; }
.verdict { font-size: 15px; padding: 10px 12px; border-left: 4px solid var(--accent); background: #f3f7fc; }
.verdict.overfitting { border-color: #d9822b; background: #fff6ec; }
.answer { white-space: pre-wrap; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.cut { color: #b3261e; font-size: 12px; }
.muted { color: var(--muted); }
footer { margin-top: 18px; color: var(--muted); font-size: 13px; }
`;

function table(header: string[], rows: string[][], numeric: boolean[] = []): string {
  const cell = (tag: string, v: string, i: number) => `<${tag}${numeric[i] ? ' class="num"' : ''}>${v}</${tag}>`;
  return `<table><thead><tr>${header.map((h, i) => cell('th', h, i)).join('')}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((v, i) => cell('td', v, i)).join('')}</tr>`).join('') + '</tbody></table>';
}

function keyValues(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('')}</tbody></table>`;
}

function recipeSection(r: ReportInput): string {
  const rc = r.recipe;
  if (!rc) return '<p class="muted">recipe.yaml not found.</p>';
  const show = (k: string) => esc(JSON.stringify(get(rc, k)) ?? '–').replace(/^&quot;(.*)&quot;$/, '$1');
  const train = get(rc, 'data.train');
  const trainText = Array.isArray(train)
    ? train.map((f) => `${esc(get(f, 'path'))} (weight ${esc(get(f, 'weight'))}${get(f, 'max_examples') ? `, first ${esc(get(f, 'max_examples'))}` : ''})`).join('<br>')
    : esc(train);
  const t = (k: string) => get(rc, `training.${k}`);
  const steps = t('max_steps') !== null && t('max_steps') !== undefined ? `max_steps ${show('training.max_steps')}` : `${show('training.num_epochs')} epochs`;
  const rows: [string, string][] = [
    ['base model', show('base_model')],
    ['training data', trainText],
    ['validation', get(rc, 'data.validation') ? show('data.validation') : Number(get(rc, 'data.val_set_size')) > 0 ? `${show('data.val_set_size')} of the training data` : 'none'],
    ['data', `format ${show('data.format')}, max_length ${show('data.max_length')}, train_on ${show('data.train_on')}, truncation ${show('data.truncation')}`],
    ['schedule', `${steps}, batch ${show('training.micro_batch_size')} × ${show('training.gradient_accumulation_steps')} accumulation`],
    ['optimizer', `${show('training.optimizer')}, lr ${show('training.learning_rate')} ${show('training.lr_scheduler')}` +
      `${Number(t('warmup_steps')) > 0 ? ` (warm-up ${show('training.warmup_steps')})` : ''}, weight decay ${show('training.weight_decay')}, max_grad_norm ${show('training.max_grad_norm')}`],
    ['evaluation / saving', `eval ${show('training.eval_strategy')}, save ${show('training.save_strategy')}` +
      `${t('save_total_limit') ? `, keep ${show('training.save_total_limit')}` : ''}${t('save_optimizer_state') === false ? `, weights only (${show('training.save_dtype')})` : ''}`],
    ['QAT', get(rc, 'qat.enabled') ? `${show('qat.scheme')} from step ${show('qat.start_step')}, embeddings ${show('qat.embeddings')}` : 'off'],
    ['seed', show('seed')],
  ];
  const m = r.manifest;
  if (m) rows.push(['run on', esc(`${m.backend}${m.kernels ? ` (${m.kernels})` : ''}, gemma-tune ${m.gemma_tune_version}, node ${m.node_version}, ${m.platform}`)]);
  return keyValues(rows);
}

function verdictSection(r: ReportInput): string {
  const s = r.summary;
  const val = r.metrics.filter((x): x is ValRow => x.split === 'val');
  const train = r.metrics.filter((x): x is TrainRow => x.split === 'train');
  if (!s) return '<p class="muted">No summary yet.</p>';
  const parts: string[] = [`<p class="verdict${s.overfit.overfitting ? ' overfitting' : ''}">${esc(s.overfit.message)}</p>`];
  const rows: [string, string][] = [];
  if (s.best) rows.push(['best checkpoint', `${esc(s.best.checkpoint)} — validation loss ${num(s.best.val_loss)} at epoch ${epochText(s.best.epoch)} (step ${s.best.step})`]);
  rows.push(['training loss', `${num(train[0]?.loss)} at step ${train[0]?.step ?? '–'} → ${num(train.at(-1)?.loss)} at step ${train.at(-1)?.step ?? '–'}`]);
  if (val.length) rows.push(['validation loss', `${num(val[0].loss)} at step ${val[0].step} → ${num(val.at(-1)!.loss)} at step ${val.at(-1)!.step}`]);
  if (s.val_loss_int4_ptq !== null && s.val_loss_int4_ptq_float !== null) {
    const label = s.qat ? 'QAT (fake-quant) evaluation' : 'post-training Q4_0 (Q8_0 embeddings)';
    rows.push(['INT4 export grid', `validation loss ${num(s.val_loss_int4_ptq)} (${label}) vs float ${num(s.val_loss_int4_ptq_float)}`]);
  }
  if (s.throughput.elapsed_s > 0) rows.push(['throughput', `${Math.round(s.throughput.tokens_per_s)} tokens/s, ${s.throughput.elapsed_s.toFixed(1)} s of training, peak RSS ${s.peak_rss_mb} MB`]);
  if (s.message) rows.push(['message', esc(s.message)]);
  parts.push(keyValues(rows));
  return parts.join('\n');
}

function evalSection(r: ReportInput): string {
  const rep = r.evalReport;
  const s = r.summary;
  const out: string[] = [];
  if (rep && rep.models.length) {
    out.push(`<p class="muted">${esc(rep.data)}: ${rep.examples} examples${rep.createdAt ? `, ${esc(rep.createdAt)}` : ''} (eval/report.json)</p>`);
    const header = ['metric', ...rep.models.map((m) => `${esc(m.model)}<br><span class="muted">${esc(m.runtime)}</span>`)];
    const rows = rep.metrics.map((k) => [esc(k), ...rep.models.map((m) => num(m.metrics[k]))]);
    out.push(table(header, rows, [false, ...rep.models.map(() => true)]));
  } else if (s?.eval && 'metrics' in s.eval) {
    const ev = s.eval;
    out.push(`<p class="muted">The final weights on the validation file (${ev.examples} examples, eval.generate).</p>`);
    out.push(table(['metric', 'final'], Object.entries(ev.metrics).map(([k, v]) => [esc(k), num(v)]), [false, true]));
  }
  if (s && s.val_loss_int4_ptq !== null && s.val_loss_int4_ptq_float !== null) {
    out.push('<h3>Float vs INT4 (validation loss of the final weights)</h3>');
    const d = s.val_loss_int4_ptq - s.val_loss_int4_ptq_float;
    out.push(table(['weights', 'validation loss', 'vs float'], [
      ['float (f32)', num(s.val_loss_int4_ptq_float), ''],
      [s.qat ? 'INT4 grid (QAT fake-quant)' : 'INT4 grid (Q4_0 linears, Q8_0 embeddings)', num(s.val_loss_int4_ptq), Number.isFinite(d) ? `${d >= 0 ? '+' : ''}${d.toExponential(2)}` : 'n/a'],
    ], [false, true, true]));
  }
  if (!out.length) out.push('<p class="muted">No evaluation yet: set eval.generate, or run <code>gemma-tune eval RUN_DIR</code> (add the exported .gguf to compare float and INT4).</p>');
  return out.join('\n');
}

function samplesSection(r: ReportInput): string {
  if (!r.samples.length) return '<p class="muted">No sample answers (eval.samples is 0, or there is no chat validation data).</p>';
  const byIndex = new Map<number, SampleRow[]>();
  for (const row of r.samples) byIndex.set(row.index, [...(byIndex.get(row.index) ?? []), row]);
  const out: string[] = [];
  for (const [index, rows] of [...byIndex].sort((a, b) => a[0] - b[0])) {
    const first = rows[0];
    out.push(`<h3>${index + 1}. ${esc(first.prompt)}</h3>`);
    out.push(`<p class="muted">${esc(first.file)}:${first.line} — reference: <span class="answer">${esc(first.reference)}</span></p>`);
    out.push(table(['step', 'epoch', 'answer'], rows.map((x) => [
      String(x.step), epochText(x.epoch),
      `<span class="answer">${esc(x.output) || '<span class="muted">(empty)</span>'}</span>${x.stop_reason === 'length' ? ' <span class="cut">[cut at max_new_tokens]</span>' : ''}`,
    ]), [true, true, false]));
  }
  return out.join('\n');
}

/** The page. */
export function renderReportHtml(r: ReportInput): string {
  const name = String(get(r.recipe, 'name') ?? 'run');
  const s = r.summary;
  const status = s?.status ?? r.manifest?.exit_status ?? 'running';
  const head = s
    ? `${s.steps} of ${s.total_steps} steps, epoch ${epochText(Math.round(s.epochs * 100) / 100)}${s.run_dir ? ` · ${esc(s.run_dir)}` : ''}`
    : '';
  const svg = r.lossSvg ? r.lossSvg.replace(/^<\?xml[^>]*>\s*/, '') : '<p class="muted">No loss plot yet.</p>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(name)} · gemma-tune run report</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>${esc(name)} <span class="badge ${esc(status)}">${esc(status.replace('_', ' '))}</span></h1><p>${head}</p></header>
<section id="recipe"><h2>Recipe</h2>
${recipeSection(r)}
</section>
<section id="loss"><h2>Loss</h2>
<figure>${svg}</figure>
</section>
<section id="verdict"><h2>Verdict</h2>
${verdictSection(r)}
</section>
<section id="eval"><h2>Evaluation</h2>
${evalSection(r)}
</section>
<section id="samples"><h2>Sample answers during training</h2>
${samplesSection(r)}
</section>
<footer>Written by gemma-tune ${esc(r.manifest?.gemma_tune_version ?? '')} at ${esc(r.writtenAt)}.</footer>
</main>
</body>
</html>
`;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** What the page shows, read from the run folder; `live` replaces what a run in progress holds in memory. */
export function loadReportInput(run: RunDir, live: Partial<Pick<ReportInput, 'summary' | 'metrics' | 'samples'>> = {}): ReportInput {
  let recipe: Record<string, unknown> | null = null;
  try {
    recipe = run.readRecipeYaml();
  } catch {
    recipe = null;
  }
  const manifest = readJson<Manifest>(run.manifestFile);
  // A summary.json left by an earlier session of a resumed run does not describe the run in progress.
  const summary = live.summary ?? (manifest?.exit_status === 'running' ? null : readJson<Summary>(run.summaryFile));
  let metrics = live.metrics;
  if (!metrics) {
    try {
      metrics = fs.existsSync(run.metricsFile) ? readMetrics(run.metricsFile) : [];
    } catch {
      metrics = [];
    }
  }
  let samples = live.samples;
  if (!samples) {
    try {
      samples = readSamples(run.samplesFile);
    } catch {
      samples = [];
    }
  }
  return {
    recipe, manifest, summary, metrics, samples,
    lossSvg: fs.existsSync(run.lossSvg) ? fs.readFileSync(run.lossSvg, 'utf8') : null,
    evalReport: readJson<EvalReport>(path.join(run.evalDir, 'report.json')),
    writtenAt: new Date().toISOString(),
  };
}

/** Write <run>/report.html (temp file + rename). */
export async function writeRunReport(run: RunDir, live: Parameters<typeof loadReportInput>[1] = {}): Promise<string> {
  await writeFileAtomic(run.reportHtml, renderReportHtml(loadReportInput(run, live)));
  return run.reportHtml;
}
