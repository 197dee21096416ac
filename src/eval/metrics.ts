// Generation metrics: each scores one model output against the reference answer; `aggregate` averages them.

export type MetricName = 'exact_match' | 'normalized_match' | 'json_valid' | 'json_field_f1' | 'accuracy' | 'avg_length';
export const GENERATION_METRICS: MetricName[] = ['exact_match', 'normalized_match', 'json_valid', 'json_field_f1', 'accuracy', 'avg_length'];

/** Lower-case, collapse whitespace, trim. */
export function normalizeText(s: string): string {
  return s.toLowerCase().replace(/\s+/g, ' ').trim();
}

/** Strip a ```json fence if the model wrapped its answer in one. */
function unfence(s: string): string {
  const m = /^\s*```(?:json)?\s*([\s\S]*?)\s*```\s*$/.exec(s);
  return m ? m[1] : s;
}

export function parseJson(s: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(unfence(s)) };
  } catch {
    return { ok: false };
  }
}

/**
 * Flatten a JSON value into `path=value` pairs (arrays as sets of `path[]=value`, so order does not matter).
 * Strings are compared after normalizeText, so "Paris" and "paris " match.
 */
export function jsonPairs(v: unknown, prefix = ''): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => jsonPairs(x, prefix + '[]'));
  if (v !== null && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => jsonPairs(x, prefix ? `${prefix}.${k}` : k));
  }
  const val = typeof v === 'string' ? normalizeText(v) : JSON.stringify(v);
  return [`${prefix}=${val}`];
}

/** Precision / recall / F1 over key-value pairs (multiset intersection). Invalid prediction JSON scores 0. */
export function jsonFieldScores(prediction: string, reference: string): { precision: number; recall: number; f1: number } {
  const ref = parseJson(reference);
  const pred = parseJson(prediction);
  if (!ref.ok) return { precision: 0, recall: 0, f1: 0 };
  const refPairs = jsonPairs(ref.value);
  const predPairs = pred.ok ? jsonPairs(pred.value) : [];
  if (refPairs.length === 0 && predPairs.length === 0) return { precision: 1, recall: 1, f1: 1 };
  const counts = new Map<string, number>();
  for (const p of refPairs) counts.set(p, (counts.get(p) ?? 0) + 1);
  let hit = 0;
  for (const p of predPairs) {
    const c = counts.get(p) ?? 0;
    if (c > 0) { hit++; counts.set(p, c - 1); }
  }
  const precision = predPairs.length ? hit / predPairs.length : 0;
  const recall = refPairs.length ? hit / refPairs.length : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}

/** Score one prediction. `labels` (the set of reference answers in the data) is used by `accuracy`. */
export function scoreExample(metric: MetricName, prediction: string, reference: string, labels?: Set<string>): number {
  switch (metric) {
    case 'exact_match':
      return prediction.trim() === reference.trim() ? 1 : 0;
    case 'normalized_match':
      return normalizeText(prediction) === normalizeText(reference) ? 1 : 0;
    case 'json_valid':
      return parseJson(prediction).ok ? 1 : 0;
    case 'json_field_f1':
      return jsonFieldScores(prediction, reference).f1;
    case 'accuracy': {
      // Classification: the predicted label is the known label the output starts with (normalized); else wrong.
      const p = normalizeText(prediction);
      const known = [...(labels ?? new Set([reference]))].map(normalizeText).sort((a, b) => b.length - a.length);
      const hit = known.find((l) => p === l || p.startsWith(l + ' ') || p.startsWith(l + '.') || p.startsWith(l + ','));
      return hit !== undefined && hit === normalizeText(reference) ? 1 : 0;
    }
    case 'avg_length':
      return prediction.length;
  }
}

/**
 * Metrics that fit a dataset, from its reference answers: JSON metrics when every reference is a JSON object or
 * array, accuracy when there are few distinct short answers (a classifier), otherwise exact/normalized match.
 */
export function metricsForReferences(references: string[]): MetricName[] {
  if (references.length === 0) return [];
  const allJson = references.every((r) => {
    const p = parseJson(r);
    return p.ok && typeof p.value === 'object' && p.value !== null;
  });
  if (allJson) return ['json_valid', 'json_field_f1', 'exact_match', 'avg_length'];
  const distinct = new Set(references.map(normalizeText));
  const short = references.every((r) => r.trim().split(/\s+/).length <= 3);
  if (short && distinct.size <= Math.max(2, Math.floor(references.length / 2)) && distinct.size <= 20) {
    return ['accuracy', 'exact_match', 'avg_length'];
  }
  return ['exact_match', 'normalized_match', 'avg_length'];
}

export function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
