import { LogCollapsingLowestDenseDDSketch } from '@datadog/sketches-js';
import { halves, halvesOf } from './hyperloglog.ts';

/**
 * DDSketch's guarantee: a reported quantile is within 1% of the exact one, relative to its value
 * (Masson, Rim & Lee, VLDB 2019). At most 2 × 2048 bins (~33 KB); beyond a 10^17 dynamic range
 * the lowest bins merge, which only blurs the smallest quantiles.
 */
export const RELATIVE_ACCURACY = 0.01;
const BIN_LIMIT = 2048;

/** A serialisable DDSketch state: non-empty bins as `[key, count]` pairs. */
export interface SketchState {
  zeroCount: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  positive: [number, number][];
  negative: [number, number][];
}

type Sketch = LogCollapsingLowestDenseDDSketch;
type Store = Sketch['store'];

export function createSketch(): Sketch {
  return new LogCollapsingLowestDenseDDSketch({ relativeAccuracy: RELATIVE_ACCURACY, binLimit: BIN_LIMIT });
}

/** A sketch's mapping from a value to its bin's key: every sketch here has the same one. */
const MAPPING = createSketch().mapping;
/** Each binary octave's mantissa is cut into 2^SLICE_BITS equal slices (see {@link OctaveKeys}). */
const SLICE_BITS = 7;
const SLICES = 1 << SLICE_BITS;
const TWO_52 = 2 ** 52;

/**
 * The keys of one binary octave `[2^e, 2^(e+1))`: the key at the start of each of its
 * {@link SLICES} slices, and the least value of each key in the octave. A value's key is then its
 * slice's, moved up past the bounds it reaches: one or two comparisons, where the mapping's own
 * `key` takes a `Math.log2`. Each bound is found by bisection with the mapping's own `key`, so the
 * two agree on every value (a test checks random values and every bound's neighbours).
 */
class OctaveKeys {
  readonly first: number;
  readonly sliceKeys = new Int32Array(SLICES);
  /** `bounds[k - first]`: the least value of the octave whose key is `k`; Infinity past the last key. */
  readonly bounds: Float64Array;

  constructor(exponent: number) {
    const scale = 2 ** exponent;
    const at = (m: number) => (1 + m / TWO_52) * scale;
    this.first = MAPPING.key(scale);
    const last = MAPPING.key(at(TWO_52 - 1));
    this.bounds = new Float64Array(last - this.first + 2);
    this.bounds[0] = scale;
    for (let k = this.first + 1; k <= last; k++) {
      // The least mantissa whose value has key k or more.
      let lo = 0;
      let hi = TWO_52 - 1;
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (MAPPING.key(at(mid)) >= k) hi = mid;
        else lo = mid + 1;
      }
      this.bounds[k - this.first] = at(lo);
    }
    this.bounds[last - this.first + 1] = Number.POSITIVE_INFINITY;
    for (let s = 0; s < SLICES; s++) this.sliceKeys[s] = MAPPING.key(at((s * TWO_52) / SLICES));
  }
}

/** The octaves met so far, by the biased exponent of their values (1 to 2046). */
const octaves: (OctaveKeys | undefined)[] = new Array(2047).fill(undefined);

/** `MAPPING.key(x)` for a positive `x`, by its octave's table when `x` is a normal double. */
export function sketchKey(x: number): number {
  halvesOf[0] = x;
  // x is positive: its high word's sign bit is clear, so the signed half reads as the unsigned one.
  const high = halves[1] as number;
  const biased = high >>> 20;
  if (biased === 0 || biased >= 2047) return MAPPING.key(x);
  let octave = octaves[biased];
  if (octave === undefined) {
    octave = new OctaveKeys(biased - 1023);
    octaves[biased] = octave;
  }
  const bounds = octave.bounds;
  const first = octave.first;
  // The mantissa's top bits, from the 20 it has in the high word.
  let k = octave.sliceKeys[(high & 0xfffff) >>> (20 - SLICE_BITS)] as number;
  while (x >= (bounds[k + 1 - first] as number)) k++;
  return k;
}

/**
 * `sketch.accept(x)`, for one finite value, with the bin's key from {@link sketchKey}: the same
 * bins, counts, sum, least and greatest value as the library's own `accept`.
 */
export function addToSketch(sketch: Sketch, x: number): void {
  const min = MAPPING.minPossible;
  if (x > min) sketch.store.add(sketchKey(x), 1);
  else if (x < -min) sketch.negativeStore.add(sketchKey(-x), 1);
  else sketch.zeroCount += 1;
  sketch.count += 1;
  sketch.sum += x;
  if (x < sketch.min) sketch.min = x;
  if (x > sketch.max) sketch.max = x;
}

/**
 * {@link addToSketch} for `xs[0, n)`, each less `offset`, in order; a value that is then NaN or
 * beyond a double is left out (see column-stats' `toSketch`). One call for a column's pending
 * numbers, with the count, sum, least and greatest value kept in locals: the same sketch as
 * adding them one by one, sum included (the same additions in the same order). The bin's three
 * lines are {@link addToSketch}'s, written out: as a shared function V8 left it a call per value,
 * which took back the whole gain (cachegrind, the file of 100 numeric columns).
 */
export function addManyToSketch(sketch: Sketch, xs: Float64Array, n: number, offset: number): void {
  const min = MAPPING.minPossible;
  const store = sketch.store;
  let count = sketch.count;
  let sum = sketch.sum;
  let least = sketch.min;
  let greatest = sketch.max;
  for (let i = 0; i < n; i++) {
    const x = (xs[i] as number) - offset;
    if (!Number.isFinite(x)) continue;
    if (x > min) store.add(sketchKey(x), 1);
    else if (x < -min) sketch.negativeStore.add(sketchKey(-x), 1);
    else sketch.zeroCount += 1;
    count += 1;
    sum += x;
    if (x < least) least = x;
    if (x > greatest) greatest = x;
  }
  sketch.count = count;
  sketch.sum = sum;
  sketch.min = least;
  sketch.max = greatest;
}

function binsOf(store: Store): [number, number][] {
  const out: [number, number][] = [];
  store.bins.forEach((count, i) => {
    if (count > 0) out.push([i + store.offset, count]);
  });
  return out;
}

/** The sketch as plain data. Our own format: the library's protobuf codec drops min and max. */
export function sketchToState(sketch: Sketch): SketchState {
  return {
    zeroCount: sketch.zeroCount,
    count: sketch.count,
    sum: sketch.sum,
    min: sketch.min,
    max: sketch.max,
    positive: binsOf(sketch.store),
    negative: binsOf(sketch.negativeStore),
  };
}

export function sketchFromState(state: SketchState): Sketch {
  const sketch = createSketch();
  for (const [key, count] of state.positive) sketch.store.add(key, count);
  for (const [key, count] of state.negative) sketch.negativeStore.add(key, count);
  sketch.zeroCount = state.zeroCount;
  sketch.count = state.count;
  sketch.sum = state.sum;
  sketch.min = state.min;
  sketch.max = state.max;
  return sketch;
}

/** Each bin as a representative value and its count, for histograms drawn from the sketch. */
export function sketchBins(sketch: Sketch): [number, number][] {
  const out: [number, number][] = [];
  for (const [key, count] of binsOf(sketch.negativeStore)) out.push([-sketch.mapping.value(key), count]);
  if (sketch.zeroCount > 0) out.push([0, sketch.zeroCount]);
  for (const [key, count] of binsOf(sketch.store)) out.push([sketch.mapping.value(key), count]);
  return out;
}

/**
 * Adds `from`'s values to `into`, bin by bin. Not the library's `merge`: in @datadog/sketches-js
 * 2.1.1 it merges the positive store only and drops every negative value
 * (https://github.com/DataDog/sketches-js/issues/22).
 */
export function mergeSketch(into: Sketch, from: Sketch): void {
  if (from.count === 0) return;
  into.store.merge(from.store);
  into.negativeStore.merge(from.negativeStore);
  into.zeroCount += from.zeroCount;
  into.count += from.count;
  into.sum += from.sum;
  into.min = Math.min(into.min, from.min);
  into.max = Math.max(into.max, from.max);
}
