import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HyperLogLog, hash53, hash53Range, hashKey, hashNumber } from './hyperloglog.ts';
import { MisraGries } from './misra-gries.ts';
import type { CountKey } from './value-kind.ts';

/** The textbook algorithm on a Map, as the profiler ran it before. */
function referenceCounts(values: CountKey[], limit: number): Map<string, number> {
  const counts = new Map<CountKey, number>();
  for (const v of values) {
    const c = counts.get(v);
    if (c !== undefined) counts.set(v, c + 1);
    else if (counts.size < limit) counts.set(v, 1);
    else for (const [k, n] of counts) n <= 1 ? counts.delete(k) : counts.set(k, n - 1);
  }
  return new Map([...counts].map(([k, n]) => [String(k), n]));
}

describe('MisraGries', () => {
  it('when values stream in, then its counters equal the textbook algorithm on a Map', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: -30, max: 30 }), fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g')), {
          maxLength: 400,
        }),
        fc.integer({ min: 1, max: 12 }),
        (values, limit) => {
          const summary = new MisraGries(limit);
          for (const v of values) summary.add(v, hashKey(v));
          const ours = new Map(summary.entries().map(([k, n]) => [String(k), n]));
          expect(ours).toEqual(referenceCounts(values, limit));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('when two keys share a hash, then they are still counted apart', () => {
    const summary = new MisraGries(4);
    summary.add('x', 7);
    summary.add('y', 7);
    summary.add(7, 7);
    // A string's slot holds no number: 0 is not taken for the number there.
    summary.add(0, 7);
    summary.add('x', 7);
    expect(summary.entries().sort()).toEqual([
      [0, 1],
      [7, 1],
      ['x', 2],
      ['y', 1],
    ]);
  });
});

describe('HyperLogLog', () => {
  it('when a value is added by its hash, then the register is the one the floating-point formula gives', () => {
    const reference = (h: number) => {
      const index = Math.floor(h / 2 ** 39);
      const rest = h % 2 ** 39;
      return [index, rest === 0 ? 40 : 39 - Math.floor(Math.log2(rest))];
    };
    const edges = [0, 1, 2 ** 39 - 1, 2 ** 39, 2 ** 53 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 38];
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...edges), fc.integer({ min: 0, max: 2 ** 53 - 1 })), (h) => {
        const hll = new HyperLogLog();
        hll.addHash(h);
        const [index, rank] = reference(h) as [number, number];
        expect(hll.registers[index]).toBe(rank);
      }),
      { numRuns: 5000 },
    );
  });

  it('when two HyperLogLogs merge, then the result is the one that saw every value', () => {
    const [a, b, both] = [new HyperLogLog(), new HyperLogLog(), new HyperLogLog()];
    for (let i = 0; i < 5000; i++) {
      (i % 3 === 0 ? a : b).addHash(hashKey(`v${i}`));
      both.addHash(hashKey(`v${i}`));
    }
    a.merge(b);
    expect(a.registers).toEqual(both.registers);
  });

  it('when text is hashed in place, then the hash equals that of the sliced string', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat(), fc.nat(), (text, a, b) => {
        const [s, e] = [Math.min(a, b) % (text.length + 1), Math.max(a, b) % (text.length + 1)].sort(
          (x, y) => x - y,
        ) as [number, number];
        expect(hash53Range(text, s, e)).toBe(hash53(text.slice(s, e)));
      }),
    );
  });

  it('when numbers are hashed by their bits, then 0 and -0 are one key and counts of many shapes stay within 3%', () => {
    expect(hashNumber(-0)).toBe(hashNumber(0));
    expect(hashNumber(1)).not.toBe(hashNumber(-1));
    const shapes: [string, (i: number) => number][] = [
      ['integers', (i) => i],
      ['cents', (i) => i / 100],
      ['large integers', (i) => 1_700_000_000_000 + i * 1000],
      ['negative decimals', (i) => -i / 7],
      ['powers', (i) => 2 ** (i % 1000) * (1 + Math.floor(i / 1000) / 1024)],
    ];
    for (const [shape, value] of shapes) {
      const hll = new HyperLogLog();
      for (let i = 0; i < 200_000; i++) hll.addHash(hashNumber(value(i)));
      expect({ shape, error: Math.abs(hll.count() / 200_000 - 1) < 0.03 }).toEqual({ shape, error: true });
    }
  });
});
