// Quantization error per layer type (|w − ŵ| with ŵ the exported grid), for training logs and reports.

import type { TensorMap } from '../util/tensors.ts';
import { fakeQuantValues, type QuantScheme } from '../quant/grid.ts';
import { layerType } from './params.ts';
import { qatSchemeFor, type QatOptions } from './qat.ts';

export interface QuantErrorStats {
  /** mean |w − ŵ| over all elements of this type */
  meanAbsErr: number;
  maxAbsErr: number;
  /** mean |w|, so the error can be read relative to the weights */
  meanAbsWeight: number;
  /** number of elements */
  count: number;
  scheme: QuantScheme;
}

export interface QuantErrorReport {
  byType: Record<string, QuantErrorStats>;
}

/**
 * Error of quantizing `weights` (HF names, [out, in]) the way QAT/export does. `scheme` is the linear-layer scheme
 * (embeddings then default to q8_0) or `{scheme, embeddings}` as in the recipe's `qat:` section.
 * Tensors that stay float (norms) are not listed.
 */
export function quantErrorReport(
  weights: TensorMap,
  scheme: QuantScheme | { scheme: QuantScheme; embeddings?: QuantScheme },
): QuantErrorReport {
  const plan = typeof scheme === 'string' ? { scheme } : scheme;
  const acc = new Map<string, { sum: number; max: number; sumW: number; count: number; scheme: QuantScheme }>();
  for (const [name, t] of weights) {
    const type = layerType(name);
    const s = qatSchemeFor(name, plan);
    if (type === null || s === null) continue;
    const q = fakeQuantValues(t.data, t.shape[t.shape.length - 1], s, name);
    const a = acc.get(type) ?? { sum: 0, max: 0, sumW: 0, count: 0, scheme: s };
    for (let i = 0; i < q.length; i++) {
      const e = Math.abs(t.data[i] - q[i]);
      a.sum += e;
      if (e > a.max) a.max = e;
      a.sumW += Math.abs(t.data[i]);
    }
    a.count += q.length;
    acc.set(type, a);
  }
  const byType: Record<string, QuantErrorStats> = {};
  for (const [type, a] of acc) {
    byType[type] = { meanAbsErr: a.sum / a.count, maxAbsErr: a.max, meanAbsWeight: a.sumW / a.count, count: a.count, scheme: a.scheme };
  }
  return { byType };
}

/** One line for logs: `quant err (mean|Δw| / mean|w|) attn_q 1.2e-3/2.0e-2 …`. */
export function formatQuantErrorReport(r: QuantErrorReport): string {
  const parts = Object.entries(r.byType).map(
    ([type, s]) => `${type}[${s.scheme}] ${s.meanAbsErr.toExponential(2)}/${s.meanAbsWeight.toExponential(2)}`,
  );
  return `quant err (mean|Δw|/mean|w|): ${parts.join(' ')}`;
}

/** Mean |w − ŵ| per layer type (attn_q, …, token_embd) for the QAT plan's grid (training logs, summary.qat). */
export function quantErrorByType(weights: TensorMap, qat: Pick<QatOptions, 'scheme' | 'embeddings'>): Record<string, number> {
  const r = quantErrorReport(weights, { scheme: qat.scheme, embeddings: qat.embeddings });
  return Object.fromEntries(Object.entries(r.byType).map(([type, s]) => [type, s.meanAbsErr]));
}
