import { describe, expect, it } from 'vitest';
import { ColumnStats } from './column-stats.ts';
import { classifyText, FieldClassifier } from './value-kind.ts';

const NULLS = ['', 'NA'];

/** Counts `values` through the CSV path: classified in place, then the column's update. */
function countCsv(values: string[]): ColumnStats {
  const stats = new ColumnStats('c');
  const classifier = new FieldClassifier(NULLS);
  const text = values.join(',');
  let at = 0;
  for (const v of values) {
    if (classifier.classify(text, at, at + v.length)) stats.addValue(classifier);
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
});
