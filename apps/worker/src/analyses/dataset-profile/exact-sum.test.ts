import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExactSum } from './exact-sum.ts';

const sumOf = (values: number[]) => {
  const s = new ExactSum();
  for (const v of values) s.add(v);
  return s;
};

describe('the exact sum', () => {
  it('when values cancel or differ wildly in size, then the sum is the correctly rounded exact one', () => {
    expect(sumOf([1e16, 1, -1e16]).value()).toBe(1);
    expect(sumOf(Array.from({ length: 10 }, () => 0.1)).value()).toBe(1);
    // math.fsum's documentation example.
    expect(sumOf([1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50]).value()).toBe(1e-100);
    expect(sumOf([]).value()).toBe(0);
    // A zero sum is +0 however it came about, so a sum read back from JSON (which writes -0 as 0) agrees.
    expect(sumOf([-0]).value()).toBe(0);
    expect(sumOf([-0, -0]).value()).toBe(0);
    expect(sumOf([-1, 1]).value()).toBe(0);
  });

  it('when the same values are added in any order or merged from any split, then the sum is the same double', () => {
    const doubles = fc.array(
      fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }), fc.integer()),
      { minLength: 1, maxLength: 200 },
    );
    fc.assert(
      fc.property(doubles, fc.nat(), fc.nat(), (values, seed, cut) => {
        const expected = sumOf(values).value();
        const shuffled = [...values];
        let s = seed;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) >>> 0;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j] as number, shuffled[i] as number];
        }
        expect(sumOf(shuffled).value()).toBe(expected);
        const at = cut % (values.length + 1);
        const merged = sumOf(values.slice(0, at));
        merged.addSum(ExactSum.fromState(JSON.parse(JSON.stringify(sumOf(values.slice(at)).toState()))));
        expect(merged.value()).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('when thousands of values are summed, then the sum is the exact one correctly rounded (a BigInt reference)', () => {
    // Every double of magnitude at least 2^-148 is an integer times 2^-200: summed as BigInts,
    // rounded once by Number() (to nearest, ties to even), then scaled back exactly.
    const reference = (values: number[]) =>
      Number(values.reduce((sum, x) => sum + BigInt(x * 2 ** 200), 0n)) * 2 ** -200;
    const value = fc.oneof(
      fc
        .double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 })
        .map((x) => (Math.abs(x) < 2 ** -148 ? 0 : x)),
      fc.integer({ min: -1e6, max: 1e6 }).map((n) => n / 100),
    );
    fc.assert(
      fc.property(fc.array(value, { minLength: 300, maxLength: 3000, size: 'max' }), (values) => {
        expect(sumOf(values).value()).toBe(reference(values) || 0);
      }),
      { numRuns: 200 },
    );
  });

  it('when the sum overflows a double, then it reads as NaN', () => {
    expect(sumOf([Number.MAX_VALUE, Number.MAX_VALUE]).value()).toBeNaN();
  });
});
