import { LogCollapsingLowestDenseDDSketch } from '@datadog/sketches-js';

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
