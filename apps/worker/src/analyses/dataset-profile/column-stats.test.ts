import { describe, expect, it } from 'vitest';
import { ColumnStats } from './column-stats.ts';
import { seededRandom } from './test-support.ts';
import { classifyText, FieldClassifier } from './value-kind.ts';

const NULLS = ['', 'NA'];

/**
 * Counts `values` through the CSV path: classified in place, then the column's update. With
 * `oneByOne`, the column's state is read after every value, which takes in the numbers it holds
 * back past the exact limit: each value then reaches every structure before the next one.
 */
function countCsv(values: string[], { oneByOne = false } = {}): ColumnStats {
  const stats = new ColumnStats('c');
  const classifier = new FieldClassifier(NULLS);
  const text = values.join(',');
  let at = 0;
  for (const v of values) {
    if (classifier.classify(text, at, at + v.length)) stats.addValue(classifier);
    if (oneByOne) stats.toState();
    at += v.length + 1;
  }
  return stats;
}

describe('ColumnStats exact counts', () => {
  it('when numbers and strings are counted exactly, then the counts and their first-seen order match a Map keyed by classifyText', () => {
    const values: string[] = [];
    // More distinct numbers than the number table's first size, decimals among them, repeated.
    for (let i = 0; i < 200; i++) values.push(String(i % 37), `${i % 23}.5`, i % 5 === 0 ? 'x' : '-0', '0.0', 'NA');
    values.push('1e3', '1000', 'true', '2024-03-01', '0', '-7.25', 'x');
    const reference = new Map<string, number>();
    for (const v of values) {
      if (NULLS.includes(v.trim())) continue;
      const key = classifyText(v).key;
      reference.set(key, (reference.get(key) ?? 0) + 1);
    }
    expect(countCsv(values).toState().counts).toEqual([...reference]);
  });

  it('when many string values repeat, then their counts, first-seen order and least and greatest text match a Map', () => {
    const random = seededRandom(3);
    const words = Array.from(
      { length: 900 },
      (_, i) => `w${(i * 7919) % 900}${i % 3 === 0 ? ' long enough to be a view' : ''}`,
    );
    const values = Array.from(
      { length: 20_000 },
      () => words[Math.floor(random() * random() * words.length)] as string,
    );
    const reference = new Map<string, number>();
    for (const v of values) reference.set(v, (reference.get(v) ?? 0) + 1);
    const state = countCsv(values).toState();
    expect(state.exact).toBe(true);
    expect(state.counts).toEqual([...reference]);
    const sorted = [...reference.keys()].sort();
    expect([state.textMin, state.textMax]).toEqual([sorted[0], sorted.at(-1)]);
  });

  it('when a key was first counted as another kind, then a string value of the same text still counts as text', () => {
    const stats = new ColumnStats('c');
    stats.add({ kind: 'boolean', key: 'zz', numeric: Number.NaN });
    const classifier = new FieldClassifier(NULLS);
    for (const text of ['b,zz', 'b,zz']) {
      for (const [start, end] of [
        [0, 1],
        [2, 4],
      ] as const) {
        if (classifier.classify(text, start, end)) stats.addValue(classifier);
      }
    }
    const state = stats.toState();
    expect(state.counts).toEqual([
      ['zz', 3],
      ['b', 2],
    ]);
    expect([state.textMin, state.textMax]).toEqual(['b', 'zz']);
  });
});

describe('ColumnStats past the exact limit', () => {
  const profileOf = (stats: ColumnStats) => ({
    state: stats.toState(),
    profile: stats.finalize(100_000, { topK: 10, bins: 10 }),
  });

  it('when numbers, strings and date-times pass the exact limit interleaved, then the state and profile equal those of the values taken in one by one', () => {
    const random = seededRandom(11);
    const values = Array.from({ length: 8_000 }, () => {
      const r = random();
      const i = Math.floor(random() * random() * 5_000);
      if (r < 0.5) return i % 7 === 0 ? `${i}.25` : String(i);
      if (r < 0.75) return `s${i % 3_000}`;
      if (r < 0.9) return `2024-0${1 + (i % 9)}-1${i % 10}T0${i % 10}:00:00Z`;
      return ['-0', '0', 'NA', ''][i % 4] as string;
    });
    const held = profileOf(countCsv(values));
    expect(held.state.exact).toBe(false);
    expect(held).toEqual(profileOf(countCsv(values, { oneByOne: true })));
  });

  it('when a numeric column holds back more numbers than its buffer, then the state and profile equal those of the values taken in one by one', () => {
    const random = seededRandom(12);
    const values = Array.from({ length: 24_000 }, () => String(Math.floor(random() * random() * 20_000) / 4));
    const held = profileOf(countCsv(values));
    expect(held.state.exact).toBe(false);
    expect(held).toEqual(profileOf(countCsv(values, { oneByOne: true })));
  });
});
