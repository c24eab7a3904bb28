import { describe, expect, it } from 'vitest';
import { addManyToSketch, addToSketch, createSketch, sketchKey, sketchToState } from './quantile-sketch.ts';
import { seededRandom } from './test-support.ts';

const float = new Float64Array(1);
const bits = new BigInt64Array(float.buffer);

/** The double `steps` representable values above (or below, when negative) the positive `x`. */
function ulps(x: number, steps: number): number {
  float[0] = x;
  bits[0] = (bits[0] as bigint) + BigInt(steps);
  return float[0] as number;
}

describe('quantile sketch keys', () => {
  const mapping = createSketch().mapping;

  it('when values of every magnitude are keyed, then each gets the key the mapping itself gives', () => {
    const random = seededRandom(12);
    for (let n = 0; n < 60_000; n++) {
      // Magnitudes from 1e-300 to 1e300, and the shapes a CSV holds most: cents, integers.
      const x =
        n % 3 === 0
          ? random() * 10 ** Math.floor(random() * 600 - 300)
          : n % 3 === 1
            ? Math.round(random() * 1e6) / 100
            : Math.floor(random() * 1e9) + 1;
      if (x > 0) expect(sketchKey(x)).toBe(mapping.key(x));
    }
  });

  it('when values lie at or next to the edge between two keys, then each still gets the mapping’s key', () => {
    // The edge between keys k - 1 and k lies near 2^(k / multiplier), the value whose
    // log2 × multiplier is k: the values around it are where a table could disagree.
    const multiplier = 1 / Math.log2(mapping.gamma);
    for (let k = -3000; k <= 3000; k += 7) {
      const edge = 2 ** (k / multiplier);
      for (let step = -3; step <= 3; step++) {
        const x = ulps(edge, step);
        expect(sketchKey(x)).toBe(mapping.key(x));
      }
    }
  });

  it('when tiny, subnormal and huge values are keyed, then they get the mapping’s key too', () => {
    for (const x of [Number.MIN_VALUE, 1e-310, 2 ** -1022, ulps(2 ** -1022, -1), 1e308, Number.MAX_VALUE]) {
      expect(sketchKey(x)).toBe(mapping.key(x));
    }
  });

  it('when values are added one by one, then the sketch equals one fed by the library’s accept', () => {
    const random = seededRandom(3);
    const ours = createSketch();
    const theirs = createSketch();
    const values = [0, -0, 1e-320, -1e-320, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE];
    for (let n = 0; n < 50_000; n++) values.push((random() - 0.3) * 10 ** Math.floor(random() * 40 - 20));
    for (const x of values) {
      addToSketch(ours, x);
      theirs.accept(x, 1);
    }
    expect(sketchToState(ours)).toEqual(sketchToState(theirs));
    for (const q of [0, 0.01, 0.25, 0.5, 0.75, 0.99, 1]) {
      expect(ours.getValueAtQuantile(q)).toBe(theirs.getValueAtQuantile(q));
    }
  });

  it('when values are added in batches, then the sketch equals one fed value by value, sum included', () => {
    const random = seededRandom(5);
    const offset = 1_700_000_000_000;
    const values = new Float64Array(20_000);
    for (let n = 0; n < values.length; n++) {
      values[n] = offset + (random() - 0.4) * 10 ** Math.floor(random() * 30 - 10);
    }
    // Left out as column-stats leaves them out: NaN, and what lies beyond a double once shifted.
    values.set([Number.NaN, Number.POSITIVE_INFINITY, -Number.MAX_VALUE, offset, offset + 5e-324], 100);
    const batched = createSketch();
    const single = createSketch();
    for (let start = 0; start < values.length; start += 4096) {
      const n = Math.min(4096, values.length - start);
      addManyToSketch(batched, values.subarray(start, start + n), n, offset);
    }
    for (const v of values) {
      const x = v - offset;
      if (Number.isFinite(x)) addToSketch(single, x);
    }
    expect(sketchToState(batched)).toEqual(sketchToState(single));
    expect(batched.sum).toBe(single.sum);
  });
});
