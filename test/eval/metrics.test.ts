import { describe, expect, it } from 'vitest';
import { jsonFieldScores, metricsForReferences, normalizeText, scoreExample } from '../../src/eval/metrics.ts';

describe('generation metrics', () => {
  it('exact and normalized match', () => {
    expect(scoreExample('exact_match', ' Hello world ', 'Hello world')).toBe(1);
    expect(scoreExample('exact_match', 'hello world', 'Hello world')).toBe(0);
    expect(scoreExample('normalized_match', 'hello   WORLD\n', 'Hello world')).toBe(1);
    expect(scoreExample('normalized_match', 'hello there', 'Hello world')).toBe(0);
    expect(normalizeText('  A\tB \n C ')).toBe('a b c');
  });

  it('json_valid accepts JSON (also fenced) and rejects the rest', () => {
    expect(scoreExample('json_valid', '{"a":1}', '{}')).toBe(1);
    expect(scoreExample('json_valid', '```json\n{"a":1}\n```', '{}')).toBe(1);
    expect(scoreExample('json_valid', '{"a":1', '{}')).toBe(0);
    expect(scoreExample('json_valid', 'Sure! {"a":1}', '{}')).toBe(0);
  });

  it('json_field_f1 over key-value pairs, order-free in arrays', () => {
    const ref = '{"people":["Ada Lovelace","Alan Turing"],"locations":["London"],"dates":[]}';
    // perfect, reordered, case differences
    expect(jsonFieldScores('{"locations":["london"],"people":["alan turing","Ada Lovelace"]}', ref).f1).toBe(1);
    // one of three pairs missing, one extra wrong pair: p = 2/3, r = 2/3
    const s = jsonFieldScores('{"people":["Ada Lovelace","Grace Hopper"],"locations":["London"]}', ref);
    expect(s.precision).toBeCloseTo(2 / 3, 12);
    expect(s.recall).toBeCloseTo(2 / 3, 12);
    expect(s.f1).toBeCloseTo(2 / 3, 12);
    // precision 1, recall 1/3 → f1 = 2·(1/3)/(4/3) = 0.5
    expect(jsonFieldScores('{"locations":["London"]}', ref).f1).toBeCloseTo(0.5, 12);
    expect(jsonFieldScores('not json', ref).f1).toBe(0);
    // duplicates count once each
    expect(jsonFieldScores('{"x":[1,1,1]}', '{"x":[1]}').precision).toBeCloseTo(1 / 3, 12);
  });

  it('accuracy picks the known label the output starts with', () => {
    const labels = new Set(['positive', 'negative', 'neutral']);
    expect(scoreExample('accuracy', 'Positive', 'positive', labels)).toBe(1);
    expect(scoreExample('accuracy', 'positive. The text is happy', 'positive', labels)).toBe(1);
    expect(scoreExample('accuracy', 'negative', 'positive', labels)).toBe(0);
    expect(scoreExample('accuracy', 'I think it is positive', 'positive', labels)).toBe(0);
  });

  it('avg_length is the character count', () => {
    expect(scoreExample('avg_length', 'abcd', 'x')).toBe(4);
  });

  it('chooses metrics that fit the data', () => {
    expect(metricsForReferences(['{"a":1}', '{"b":[2]}'])).toContain('json_field_f1');
    expect(metricsForReferences(['positive', 'negative', 'positive', 'neutral', 'negative', 'positive'])).toContain('accuracy');
    expect(metricsForReferences(['Greetings, Earthling! We come in peace.', 'Zorp! The red dust sings tonight.'])).toEqual(['exact_match', 'normalized_match', 'avg_length']);
  });
});
