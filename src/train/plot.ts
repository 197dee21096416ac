// loss.svg: training and validation loss against step (bottom axis) and epoch (top axis), drawn as plain SVG
// text so no plotting library or native download is needed; loss.png is rendered from it with @resvg/resvg-js
// when that optional native module loads.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';

export interface LossPoint {
  step: number;
  loss: number;
}

export interface LossPlotInput {
  title: string;
  train: LossPoint[];
  val: LossPoint[];
  /** Optimizer steps per epoch (draws the epoch scale on the top axis); omit to leave it out. */
  stepsPerEpoch?: number;
  /** Last step of the x axis (default: the largest step plotted). */
  totalSteps?: number;
  /** The lowest validation loss (marked); default: computed from `val`. */
  best?: LossPoint | null;
}

const W = 820, H = 500;
const M = { left: 78, right: 30, top: 78, bottom: 62 };
const COLORS = { train: '#1f77b4', val: '#ff7f0e', best: '#2ca02c', grid: '#e5e5e5', axis: '#333333' };
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

/** 1, 2 or 5 × 10^k: a tick spacing giving about `target` intervals over `range`. */
export function niceStep(range: number, target = 6): number {
  if (!(range > 0) || !Number.isFinite(range)) return 1;
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/** Ticks at multiples of a nice step covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  const step = niceStep(hi - lo, target);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const n2 = (v: number) => (Math.round(v * 100) / 100).toString();

/** The loss plot as an SVG document. Non-finite losses are left out. */
export function renderLossSvg(input: LossPlotInput): string {
  const train = input.train.filter((p) => Number.isFinite(p.loss));
  const val = input.val.filter((p) => Number.isFinite(p.loss));
  const all = [...train, ...val];
  const best = input.best !== undefined ? input.best : val.length ? val.reduce((a, b) => (b.loss < a.loss ? b : a)) : null;

  const maxStep = Math.max(1, input.totalSteps ?? 0, ...all.map((p) => p.step));
  let yLo = all.length ? Math.min(...all.map((p) => p.loss)) : 0;
  let yHi = all.length ? Math.max(...all.map((p) => p.loss)) : 1;
  if (yHi - yLo < 1e-6) { yLo -= 0.5; yHi += 0.5; }
  const yStep = niceStep(yHi - yLo);
  yLo = Math.floor(yLo / yStep) * yStep;
  yHi = Math.ceil(yHi / yStep) * yStep;

  const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
  const x = (step: number) => M.left + (step / maxStep) * pw;
  const y = (loss: number) => M.top + (1 - (loss - yLo) / (yHi - yLo)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold" fill="${COLORS.axis}">${esc(input.title)}</text>`);

  // Grid and y axis.
  out.push('<g class="axis-y">');
  for (const t of niceTicks(yLo, yHi)) {
    const ty = n2(y(t));
    out.push(`<line x1="${M.left}" y1="${ty}" x2="${M.left + pw}" y2="${ty}" stroke="${COLORS.grid}"/>`);
    out.push(`<line x1="${M.left - 5}" y1="${ty}" x2="${M.left}" y2="${ty}" stroke="${COLORS.axis}"/>`);
    out.push(`<text x="${M.left - 8}" y="${ty}" dy="4" text-anchor="end" font-size="12" fill="${COLORS.axis}">${fmt(t)}</text>`);
  }
  out.push(`<text transform="translate(20 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="14" fill="${COLORS.axis}">loss</text>`);
  out.push('</g>');

  // Step axis (bottom).
  out.push('<g class="axis-step">');
  for (const t of niceTicks(0, maxStep).filter((t) => Number.isInteger(t))) {
    const tx = n2(x(t));
    out.push(`<line x1="${tx}" y1="${M.top}" x2="${tx}" y2="${M.top + ph}" stroke="${COLORS.grid}"/>`);
    out.push(`<line x1="${tx}" y1="${M.top + ph}" x2="${tx}" y2="${M.top + ph + 5}" stroke="${COLORS.axis}"/>`);
    out.push(`<text x="${tx}" y="${M.top + ph + 20}" text-anchor="middle" font-size="12" fill="${COLORS.axis}">${fmt(t)}</text>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle" font-size="14" fill="${COLORS.axis}">step</text>`);
  out.push('</g>');

  // Epoch axis (top): a tick at the end of every epoch, thinned to at most ~12 labels.
  if (input.stepsPerEpoch && input.stepsPerEpoch > 0) {
    const epochs = Math.ceil(maxStep / input.stepsPerEpoch - 1e-9);
    const every = Math.max(1, Math.ceil(epochs / 12));
    out.push('<g class="axis-epoch">');
    out.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left + pw}" y2="${M.top}" stroke="${COLORS.axis}"/>`);
    for (let e = 0; e <= epochs; e += every) {
      const s = Math.min(e * input.stepsPerEpoch, maxStep);
      const tx = n2(x(s));
      out.push(`<line x1="${tx}" y1="${M.top - 5}" x2="${tx}" y2="${M.top}" stroke="${COLORS.axis}"/>`);
      out.push(`<text x="${tx}" y="${M.top - 9}" text-anchor="middle" font-size="12" fill="${COLORS.axis}">${e}</text>`);
    }
    out.push(`<text x="${M.left + pw / 2}" y="${M.top - 28}" text-anchor="middle" font-size="14" fill="${COLORS.axis}">epoch</text>`);
    out.push('</g>');
  }

  // Plot frame.
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="${COLORS.axis}"/>`);

  // Series.
  const pts = (ps: LossPoint[]) => ps.map((p) => `${n2(x(p.step))},${n2(y(p.loss))}`).join(' ');
  if (train.length) {
    out.push(`<polyline class="series-train" fill="none" stroke="${COLORS.train}" stroke-width="1.6" stroke-linejoin="round" points="${pts(train)}"/>`);
  }
  if (val.length) {
    out.push(`<polyline class="series-val" fill="none" stroke="${COLORS.val}" stroke-width="2.2" stroke-linejoin="round" points="${pts(val)}"/>`);
    out.push('<g class="val-points">');
    for (const p of val) out.push(`<circle cx="${n2(x(p.step))}" cy="${n2(y(p.loss))}" r="3.5" fill="${COLORS.val}"/>`);
    out.push('</g>');
  }
  if (best && Number.isFinite(best.loss)) {
    const bx = x(best.step), by = y(best.loss);
    const label = `best val ${best.loss.toFixed(4)} @ step ${best.step}`;
    const anchor = bx > M.left + pw * 0.7 ? 'end' : 'start';
    const lx = anchor === 'end' ? bx - 10 : bx + 10;
    out.push(`<g class="best-marker" data-step="${best.step}" data-loss="${best.loss}">`);
    out.push(`<circle cx="${n2(bx)}" cy="${n2(by)}" r="8" fill="none" stroke="${COLORS.best}" stroke-width="2.5"/>`);
    out.push(`<text x="${n2(lx)}" y="${n2(by + 22)}" text-anchor="${anchor}" font-size="12" fill="${COLORS.best}">${esc(label)}</text>`);
    out.push('</g>');
  }

  // Legend (top right inside the plot).
  const items: [string, string, boolean][] = [['train', COLORS.train, false], ['validation', COLORS.val, true]];
  if (best) items.push(['best validation', COLORS.best, false]);
  const lw = 150, lh = 10 + items.length * 20;
  // The corner that hides the fewest data points.
  const corners = [
    [M.left + pw - lw - 10, M.top + 10], [M.left + pw - lw - 10, M.top + ph - lh - 10],
    [M.left + 10, M.top + ph - lh - 10], [M.left + 10, M.top + 10],
  ];
  const samples: [number, number][] = [];
  for (const series of [train, val]) {
    series.forEach((p, i) => {
      const q = series[i + 1] ?? p;
      for (let k = 0; k < 16; k++) samples.push([x(p.step + ((q.step - p.step) * k) / 16), y(p.loss + ((q.loss - p.loss) * k) / 16)]);
    });
  }
  const hidden = ([cx, cy]: number[]) =>
    samples.filter(([px, py]) => px >= cx - 6 && px <= cx + lw + 6 && py >= cy - 6 && py <= cy + lh + 6).length;
  const [lx0, ly0] = corners.reduce((a, b) => (hidden(b) < hidden(a) ? b : a));
  out.push('<g class="legend">');
  out.push(`<rect x="${lx0}" y="${ly0}" width="${lw}" height="${lh}" fill="#ffffff" fill-opacity="0.9" stroke="#bbbbbb"/>`);
  items.forEach(([name, color, dot], i) => {
    const iy = ly0 + 18 + i * 20;
    if (name === 'best validation') {
      out.push(`<circle cx="${lx0 + 22}" cy="${iy - 4}" r="6" fill="none" stroke="${color}" stroke-width="2.5"/>`);
    } else {
      out.push(`<line x1="${lx0 + 10}" y1="${iy - 4}" x2="${lx0 + 34}" y2="${iy - 4}" stroke="${color}" stroke-width="2.2"/>`);
      if (dot) out.push(`<circle cx="${lx0 + 22}" cy="${iy - 4}" r="3.5" fill="${color}"/>`);
    }
    out.push(`<text x="${lx0 + 42}" y="${iy}" font-size="12" fill="${COLORS.axis}">${name}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

type ResvgModule = { Resvg: new (svg: string, opts?: Record<string, unknown>) => { render(): { asPng(): Uint8Array } } };

/** PNG bytes rendered from SVG text, or null when @resvg/resvg-js cannot be loaded on this machine. */
export async function svgToPng(svg: string): Promise<Uint8Array | null> {
  let mod: ResvgModule;
  try {
    mod = (await import('@resvg/resvg-js')) as unknown as ResvgModule;
  } catch {
    return null;
  }
  try {
    const r = new mod.Resvg(svg, {
      fitTo: { mode: 'width', value: W * 2 },
      font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    });
    return r.render().asPng();
  } catch {
    return null;
  }
}

/** Write `loss.svg` (always) and `loss.png` (when it can be rendered) into `dir`, atomically. Returns the paths written. */
export async function writeLossPlots(dir: string, input: LossPlotInput): Promise<string[]> {
  const svg = renderLossSvg(input);
  const svgFile = path.join(dir, 'loss.svg');
  await writeFileAtomic(svgFile, svg);
  const written = [svgFile];
  const png = await svgToPng(svg);
  if (png) {
    const pngFile = path.join(dir, 'loss.png');
    await writeFileAtomic(pngFile, png);
    written.push(pngFile);
  } else {
    fs.rmSync(path.join(dir, 'loss.png'), { force: true }); // never leave a stale picture next to a new svg
  }
  return written;
}
