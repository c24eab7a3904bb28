import type { ColumnProfile } from '@longhaul/shared/analyses/dataset-profile';
import { DATASET_EXACT_DISTINCT_LIMIT, DATASET_QUANTILES } from '@longhaul/shared/analyses/dataset-profile-limits';
import { ExactSum } from './exact-sum.ts';
import { HyperLogLog, halves, halvesOf, hash53, hash53Range, hashHalves, hashKey, hashNumber } from './hyperloglog.ts';
import { MisraGries } from './misra-gries.ts';
import { NumberSlots } from './number-slots.ts';
import {
  addManyToSketch,
  addToSketch,
  createSketch,
  mergeSketch,
  type SketchState,
  sketchBins,
  sketchFromState,
  sketchToState,
} from './quantile-sketch.ts';
import { hashText, StringSlots } from './string-slots.ts';
import {
  type Classified,
  type CountKey,
  classifyText,
  countKeyOf,
  type FieldValue,
  KIND_DATETIME,
  KIND_INTEGER,
  KIND_NUMBER,
  KIND_STRING,
  ownKey,
  VALUE_KINDS,
  type ValueKind,
} from './value-kind.ts';

/** Values longer than this are counted by a prefix and a hash of the whole, so keys stay small. */
const MAX_KEY_CHARS = 200;
/** `p05` → 0.05: each reported quantile's level, read off its name. */
const QUANTILE_OF = Object.fromEntries(DATASET_QUANTILES.map((name) => [name, Number(name.slice(1)) / 100])) as Record<
  (typeof DATASET_QUANTILES)[number],
  number
>;

type KindCounts = Record<ValueKind, number>;

/**
 * Exact value counts: each value's slot, and the counts in a typed array. A value already seen
 * costs one lookup, where `map.set(k, map.get(k) + 1)` costs two (that line was half of the
 * per-value update in the profile). String keys find their slot in a {@link StringSlots} table,
 * read where they lie in the decoded batch, number keys in a {@link NumberSlots} table by their
 * bits, so a value already counted is neither cut out as a string nor boxed (boxing a number and
 * a `Map` lookup cost about four times as much, in a micro-benchmark). Iterates in first-seen
 * order, as a `Map` does.
 */
class ExactCounts implements Iterable<[CountKey, number]> {
  private readonly strings = new StringSlots();
  private readonly numbers = new NumberSlots();
  /** Each slot's key, in first-seen order. */
  private readonly keys: CountKey[] = [];
  private counts = new Float64Array(64);
  /** 1 for a slot whose key was counted as a string value (see {@link addText}). */
  private asText = new Uint8Array(64);

  get size(): number {
    return this.keys.length;
  }

  add(key: CountKey, n: number): void {
    if (typeof key === 'number') {
      halvesOf[0] = key === 0 ? 0 : key;
      this.addHalves(halves[0] as number, halves[1] as number, n);
      return;
    }
    this.addText(key, 0, key.length, n, false);
  }

  /**
   * Counts `n` of the string key `text.slice(start, end)`, found where it lies: a string is made
   * only for a key not counted before. When `asString`, the value is a string value (not a
   * date-time's or a boolean's key), and the key is returned if no string value had it before, so
   * the caller compares it with the column's least and greatest text once per key; otherwise null.
   */
  addText(text: string, start: number, end: number, n: number, asString: boolean): string | null {
    const hash = hashText(text, start, end);
    let slot = this.strings.find(text, start, end, hash);
    if (slot >= 0) {
      this.counts[slot] = (this.counts[slot] as number) + n;
    } else {
      slot = this.keys.length;
      const owned = ownKey(text.slice(start, end)) as string;
      this.strings.insert(owned, hash, slot);
      this.push(owned, n);
    }
    if (!asString || this.asText[slot] === 1) return null;
    this.asText[slot] = 1;
    return this.keys[slot] as string;
  }

  /** Counts `n` of the number whose halves are `low` and `high` (see {@link halvesOf}). */
  addHalves(low: number, high: number, n: number): void {
    const next = this.keys.length;
    const slot = this.numbers.slotOf(low, high, next);
    if (slot !== next) {
      this.counts[slot] = (this.counts[slot] as number) + n;
      return;
    }
    halves[0] = low;
    halves[1] = high;
    this.push(halvesOf[0] as number, n);
  }

  private push(key: CountKey, n: number): void {
    const next = this.keys.length;
    if (next === this.counts.length) {
      const grown = new Float64Array(next * 2);
      grown.set(this.counts);
      this.counts = grown;
      const asText = new Uint8Array(next * 2);
      asText.set(this.asText);
      this.asText = asText;
    }
    this.keys.push(key);
    this.counts[next] = n;
  }

  *[Symbol.iterator](): IterableIterator<[CountKey, number]> {
    for (let slot = 0; slot < this.keys.length; slot++)
      yield [this.keys[slot] as CountKey, this.counts[slot] as number];
  }
}

/** A column's aggregation state as plain JSON, for checkpoints. */
export interface ColumnState {
  name: string;
  nonNull: number;
  kinds: KindCounts;
  n: number;
  mean: number;
  m2: number;
  /** The exact sum's partials (see ExactSum); null once it overflowed. Absent in checkpoints older than it. */
  sum?: number[] | null;
  min: number | null;
  max: number | null;
  textMin: string | null;
  textMax: string | null;
  exact: boolean;
  counts: [string, number][];
  hll: string | null;
  sketch: SketchState | null;
  sketchOffset: number;
}

const keyOf = (key: string) =>
  key.length <= MAX_KEY_CHARS ? key : `${key.slice(0, MAX_KEY_CHARS)}…#${hash53(key).toString(36)}`;

/** The value at 0-based position `index` of the sorted values that `[value, count]` pairs expand to. */
function valueAt(sorted: [number, number][], index: number): number {
  let seen = 0;
  for (const [value, count] of sorted) {
    seen += count;
    if (index < seen) return value;
  }
  return sorted.at(-1)?.[0] ?? Number.NaN;
}

/** Linear interpolation between closest ranks (numpy's default, R type 7) over `[value, count]` pairs sorted by value. */
function exactQuantile(sorted: [number, number][], total: number, q: number): number {
  const h = (total - 1) * q;
  const lo = Math.floor(h);
  const lower = valueAt(sorted, lo);
  const upper = valueAt(sorted, Math.min(lo + 1, total - 1));
  const f = h - lo;
  if (f === 0) return lower;
  // Two values of opposite signs near ±1.8e308 are further apart than a double holds: weighted
  // instead, which cannot overflow (each term is at most the larger value).
  const spread = upper - lower;
  return Number.isFinite(spread) ? lower + f * spread : lower * (1 - f) + upper * f;
}

/**
 * Adds `count` of the value `x` (shifted by the column's sketch offset) to the quantile sketch,
 * unless it is NaN or beyond a double: a date/time column's offset is its least value, and a
 * number near ±1.8e308 among its dates takes a date past the largest double. Such a value stays in
 * every exact statistic; the library would throw on it (an infinite key sizes its bins).
 */
function toSketch(sketch: ReturnType<typeof createSketch>, x: number, count: number): void {
  if (!Number.isFinite(x)) return;
  if (count === 1) addToSketch(sketch, x);
  else sketch.accept(x, count);
}

/**
 * Numbers past the exact limit wait in a column's buffer of this many, in row order, and then go
 * into its HyperLogLog, its Misra–Gries summary and its sketch one structure after the other (see
 * `flushNumbers`). Fed value by value, a file of many such columns visited every column's three
 * structures for each row: more than the CPU's cache holds, so nearly every update missed it.
 */
const PENDING_NUMBERS = 8192;

/**
 * One column's running statistics. Memory per column is bounded: at most
 * DATASET_EXACT_DISTINCT_LIMIT + 1 counted keys of ≤ 200 characters, then a 16 KiB HyperLogLog and
 * a DDSketch of ≤ 4096 bins replace exactness; count, mean, variance, min and max stay exact.
 */
export class ColumnStats {
  nonNull = 0;
  /** Values per kind, indexed by the kind's code (VALUE_KINDS). */
  private readonly kindCounts = new Float64Array(VALUE_KINDS.length);
  // Welford's running mean and sum of squared deviations over numbers and dates (epoch ms), for
  // the standard deviation. The reported mean is the exact sum over n instead: it does not depend
  // on the order of the values, so a profile merged from byte ranges reports the same mean.
  private n = 0;
  private mean = 0;
  private m2 = 0;
  private sum = new ExactSum();
  /** Meaningful once `n > 0`. */
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private textMin: string | null = null;
  private textMax: string | null = null;
  /** Exact value counts while `exact` (then `frequent` is null). */
  private counts = new ExactCounts();
  /** Past the exact limit: a Misra–Gries summary of the frequent values. */
  private frequent: MisraGries | null = null;
  private exact = true;
  private hll: HyperLogLog | null = null;
  private sketch: ReturnType<typeof createSketch> | null = null;
  /**
   * Subtracted before a value enters the sketch. 0 for numbers; the earliest date for date/time
   * columns, because 1% of an epoch in milliseconds is months, while 1% of the span is not.
   */
  private sketchOffset = 0;
  /**
   * Past the exact limit: numbers counted but not yet in `hll`, `frequent` and `sketch`, in row
   * order. Every reader of those, and every other update of `frequent` or `sketch`, first takes
   * them in ({@link flushNumbers}), so each structure sees the very sequence it saw value by value.
   */
  private pending: Float64Array | null = null;
  private pendingHashes: Float64Array | null = null;
  private pendingCount = 0;

  /** The NDJSON path's value, reused: it takes the CSV path's update (see {@link add}). */
  private readonly slot: FieldValue = { kind: 0, numeric: Number.NaN, key: '', text: '', keyStart: -1, keyEnd: -1 };

  constructor(readonly name: string) {}

  get kinds(): KindCounts {
    const k = this.kindCounts;
    return { integer: k[0] ?? 0, number: k[1] ?? 0, boolean: k[2] ?? 0, datetime: k[3] ?? 0, string: k[4] ?? 0 };
  }

  /** Counts a classified value (NDJSON, and the slow path), through the same update as the CSV path. */
  add(value: Classified): void {
    const kind = VALUE_KINDS.indexOf(value.kind);
    const slot = this.slot;
    slot.kind = kind;
    slot.numeric = value.numeric;
    // A number's key is itself (`numeric`); a JSON string that reads as a canonical number shares its key, as before.
    slot.key = kind === KIND_STRING ? countKeyOf(value.key) : value.key;
    slot.text = value.key;
    this.addValue(slot);
  }

  /**
   * The one update, for a value the CSV hot path classified in place (no object per value): a
   * number counts under itself, anything else under `key`, or, with `keyStart >= 0`, under
   * `text.slice(keyStart, keyEnd)`, counted and hashed where it lies. The fields are read here,
   * not passed on as arguments: a double passed to a call is boxed, once per value.
   */
  addValue(value: FieldValue): void {
    const kind = value.kind;
    const x = value.numeric;
    this.nonNull++;
    this.kindCounts[kind] = (this.kindCounts[kind] as number) + 1;
    if (!Number.isNaN(x)) {
      this.n++;
      const delta = x - this.mean;
      this.mean += delta / this.n;
      this.m2 += delta * (x - this.mean);
      this.sum.add(x);
      if (x < this.min) this.min = x;
      if (x > this.max) this.max = x;
      if (kind <= KIND_NUMBER) {
        if (!this.exact) {
          const pending = this.pending as Float64Array;
          pending[this.pendingCount] = x;
          if (++this.pendingCount === pending.length) this.flushNumbers();
          return;
        }
        // Counted by its bits, never boxed (see FieldValue and ExactCounts); 0 and -0 are one key.
        halvesOf[0] = x === 0 ? 0 : x;
        this.counts.addHalves(halves[0] as number, halves[1] as number, 1);
        if (this.counts.size > DATASET_EXACT_DISTINCT_LIMIT) this.overflow();
        return;
      }
      if (this.sketch !== null) {
        if (this.pendingCount > 0) this.flushNumbers();
        toSketch(this.sketch, x - this.sketchOffset, 1);
      }
    }
    this.addKey(value, kind);
  }

  /**
   * The update's part for a value counted under a key (anything but a number): apart from
   * {@link addValue}, whose numbers' part stays small enough for V8 to inline what it calls.
   */
  private addKey(value: FieldValue, kind: number): void {
    const text = value.text;
    const keyStart = value.keyStart;
    const keyEnd = value.keyEnd;
    if (keyStart >= 0 && keyEnd - keyStart <= MAX_KEY_CHARS) {
      // A string's or date-time's own text, where it lies (see FieldValue).
      const isString = kind === KIND_STRING;
      if (this.exact) {
        // A string value is compared with the least and greatest text once, when first counted:
        // a value counted before cannot change them.
        const t = this.counts.addText(text, keyStart, keyEnd, 1, isString);
        if (t !== null) this.compareText(t);
        if (this.counts.size > DATASET_EXACT_DISTINCT_LIMIT) this.overflow();
        return;
      }
      const k = text.slice(keyStart, keyEnd);
      if (isString) this.compareText(k);
      if (this.pendingCount > 0) this.flushNumbers();
      const hash = hash53Range(text, keyStart, keyEnd);
      (this.hll as HyperLogLog).addHash(hash);
      (this.frequent as MisraGries).add(k, hash);
      return;
    }
    // An NDJSON value, or a value cut short: counted under its key (a string of its own).
    let k = keyStart >= 0 ? text.slice(keyStart, keyEnd) : value.key;
    if (kind === KIND_STRING) {
      // An NDJSON string that reads as a number is counted under the number (see CountKey); `text` is its text.
      const t = keyOf(typeof k === 'string' ? k : text);
      this.compareText(t);
      // A value cut short is counted by its prefix and hash.
      if (typeof k === 'string') k = t;
    }
    if (this.exact) {
      this.counts.add(k, 1);
      if (this.counts.size > DATASET_EXACT_DISTINCT_LIMIT) this.overflow();
      return;
    }
    if (this.pendingCount > 0) this.flushNumbers();
    const hash = typeof k === 'number' ? hashNumber(k) : hash53(k);
    (this.hll as HyperLogLog).addHash(hash);
    (this.frequent as MisraGries).add(k, hash);
  }

  /** Takes a string value's text (its key) into the column's least and greatest text. */
  private compareText(t: string): void {
    if (this.textMin === null || t < this.textMin) this.textMin = t;
    if (this.textMax === null || t > this.textMax) this.textMax = t;
  }

  /** Past the exact limit: seed the HyperLogLog and the sketch with what was counted exactly. */
  private overflow(): void {
    this.exact = false;
    this.hll = new HyperLogLog();
    const kinds = this.kinds;
    this.sketchOffset = kinds.datetime > kinds.integer + kinds.number && this.n > 0 ? this.min : 0;
    this.sketch = createSketch();
    for (const [key, count] of this.counts) {
      this.hll.addHash(hashKey(key));
      const x = this.numericOfKey(key);
      toSketch(this.sketch, x - this.sketchOffset, count);
    }
    this.frequent = MisraGries.from(this.counts, DATASET_EXACT_DISTINCT_LIMIT);
    this.counts = new ExactCounts();
    this.startPending();
  }

  /** The buffers of numbers past the exact limit (see {@link pending}). */
  private startPending(): void {
    this.pending = new Float64Array(PENDING_NUMBERS);
    this.pendingHashes = new Float64Array(PENDING_NUMBERS);
  }

  /**
   * Takes the pending numbers into the HyperLogLog, the Misra–Gries summary and the sketch, in
   * their order, one structure at a time, so each stays in the CPU's cache for the whole run.
   */
  private flushNumbers(): void {
    const n = this.pendingCount;
    if (n === 0) return;
    this.pendingCount = 0;
    const xs = this.pending as Float64Array;
    const hashes = this.pendingHashes as Float64Array;
    for (let i = 0; i < n; i++) {
      const x = xs[i] as number;
      // Hashed by its bits (see FieldValue and ExactCounts); 0 and -0 are one key.
      halvesOf[0] = x === 0 ? 0 : x;
      hashes[i] = hashHalves(halves[0] as number, halves[1] as number);
    }
    const hll = this.hll as HyperLogLog;
    for (let i = 0; i < n; i++) hll.addHash(hashes[i] as number);
    const frequent = this.frequent as MisraGries;
    for (let i = 0; i < n; i++) frequent.add(xs[i] as number, hashes[i] as number);
    addManyToSketch(this.sketch as ReturnType<typeof createSketch>, xs, n, this.sketchOffset);
  }

  /**
   * The value a counted key stands for in the sketch, or NaN. A number is keyed by itself, so a
   * string key is never a number's (see CountKey), even where `Number` reads it ("123e4567",
   * "Infinity", "0x1A"): only a date/time has a value then, read as the classifier reads it.
   */
  private numericOfKey(key: CountKey): number {
    if (typeof key === 'number') {
      const numbers = (this.kindCounts[KIND_INTEGER] ?? 0) + (this.kindCounts[KIND_NUMBER] ?? 0);
      return numbers === 0 ? Number.NaN : key;
    }
    if ((this.kindCounts[KIND_DATETIME] ?? 0) === 0) return Number.NaN;
    const c = classifyText(key);
    return c.kind === 'datetime' ? c.numeric : Number.NaN;
  }

  /**
   * Adds what `other` counted: the same column over another byte range of the dataset (see
   * merge-profiles.ts). Counts, type counts, the exact sum, min and max add up or compare exactly,
   * so they equal one pass over both ranges. So do exact value counts, and with them distinct,
   * top-k, quantiles and histogram, while the union stays within the exact limit. Past it:
   * HyperLogLog registers merge by maximum, which gives the very registers one pass would have;
   * Misra–Gries summaries merge by adding counters and subtracting the (k+1)-th largest (Agarwal
   * et al. 2012), which keeps their error bound; DDSketches merge bin by bin when they share an
   * origin, and are re-binned onto the earlier origin otherwise (date/time columns, see
   * {@link addSketch}). The variance merges by Chan et al.'s formula: equal up to rounding.
   */
  merge(other: ColumnStats): void {
    this.flushNumbers();
    other.flushNumbers();
    this.nonNull += other.nonNull;
    for (let i = 0; i < VALUE_KINDS.length; i++) {
      this.kindCounts[i] = (this.kindCounts[i] as number) + (other.kindCounts[i] as number);
    }
    if (other.n > 0) {
      if (this.n === 0) {
        this.mean = other.mean;
        this.m2 = other.m2;
      } else {
        const n = this.n + other.n;
        const delta = other.mean - this.mean;
        this.m2 += other.m2 + delta * delta * ((this.n * other.n) / n);
        this.mean += delta * (other.n / n);
      }
      this.n += other.n;
      this.sum.addSum(other.sum);
      if (other.min < this.min) this.min = other.min;
      if (other.max > this.max) this.max = other.max;
    }
    if (other.textMin !== null && (this.textMin === null || other.textMin < this.textMin)) this.textMin = other.textMin;
    if (other.textMax !== null && (this.textMax === null || other.textMax > this.textMax)) this.textMax = other.textMax;

    if (this.exact && other.exact) {
      for (const [key, count] of other.counts) this.counts.add(key, count);
      if (this.counts.size > DATASET_EXACT_DISTINCT_LIMIT) this.overflow();
      return;
    }
    if (this.exact) this.overflow();
    const hll = this.hll as HyperLogLog;
    const sketch = this.sketch as ReturnType<typeof createSketch>;
    const combined = new Map<CountKey, number>((this.frequent as MisraGries).entries());
    for (const [key, count] of other.countEntries()) combined.set(key, (combined.get(key) ?? 0) + count);
    this.frequent = MisraGries.from(combined, DATASET_EXACT_DISTINCT_LIMIT);
    if (other.exact) {
      for (const [key, count] of other.counts) {
        hll.addHash(hashKey(key));
        const x = this.numericOfKey(key);
        toSketch(sketch, x - this.sketchOffset, count);
      }
      return;
    }
    hll.merge(other.hll as HyperLogLog);
    this.addSketch(other.sketch as ReturnType<typeof createSketch>, other.sketchOffset);
  }

  /**
   * Adds `other`'s quantile sketch, whose values were shifted by `otherOffset`. Numeric columns
   * (offset 0) merge bin by bin, exactly as one sketch fed both ranges. A date/time column's
   * sketch starts at the earliest date its range had seen when it passed the exact limit, so two
   * ranges can disagree: the later-starting one is re-binned onto the earlier origin, each bin at
   * its representative value, which can add up to one more bin's width (1%) to the error.
   */
  private addSketch(other: ReturnType<typeof createSketch>, otherOffset: number): void {
    const mine = this.sketch as ReturnType<typeof createSketch>;
    if (otherOffset === this.sketchOffset) {
      mergeSketch(mine, other);
      return;
    }
    const [base, moved, shift] =
      otherOffset < this.sketchOffset
        ? [other, mine, this.sketchOffset - otherOffset]
        : [mine, other, otherOffset - this.sketchOffset];
    const merged = createSketch();
    mergeSketch(merged, base);
    for (const [value, count] of sketchBins(moved)) toSketch(merged, value + shift, count);
    this.sketch = merged;
    this.sketchOffset = Math.min(this.sketchOffset, otherOffset);
  }

  /** The mean: the exact sum over n (the running mean only if the sum overflowed a double). */
  private exactMean(): number {
    const sum = this.sum.value();
    return Number.isNaN(sum) ? this.mean : sum / this.n;
  }

  /** The counted values: exact counts, or the frequent values' Misra–Gries counts. */
  private countEntries(): [CountKey, number][] {
    return this.frequent ? this.frequent.entries() : [...this.counts];
  }

  toState(): ColumnState {
    this.flushNumbers();
    return {
      name: this.name,
      nonNull: this.nonNull,
      kinds: this.kinds,
      n: this.n,
      mean: this.mean,
      m2: this.m2,
      sum: this.sum.toState(),
      min: this.n > 0 ? this.min : null,
      max: this.n > 0 ? this.max : null,
      textMin: this.textMin,
      textMax: this.textMax,
      exact: this.exact,
      counts: this.countEntries().map(([key, count]) => [String(key), count]),
      hll: this.hll?.toBase64() ?? null,
      sketch: this.sketch ? sketchToState(this.sketch) : null,
      sketchOffset: this.sketchOffset,
    };
  }

  static fromState(state: ColumnState): ColumnStats {
    const c = new ColumnStats(state.name);
    c.nonNull = state.nonNull;
    VALUE_KINDS.forEach((kind, i) => {
      c.kindCounts[i] = state.kinds[kind];
    });
    c.n = state.n;
    c.mean = state.mean;
    c.m2 = state.m2;
    c.sum = state.sum === undefined ? new ExactSum([state.mean * state.n]) : ExactSum.fromState(state.sum);
    c.min = state.min ?? Number.POSITIVE_INFINITY;
    c.max = state.max ?? Number.NEGATIVE_INFINITY;
    c.textMin = state.textMin;
    c.textMax = state.textMax;
    c.exact = state.exact;
    const counts = state.counts.map(([key, count]): [CountKey, number] => [countKeyOf(key), count]);
    if (state.exact) for (const [key, count] of counts) c.counts.add(key, count);
    else {
      c.frequent = MisraGries.from(counts, DATASET_EXACT_DISTINCT_LIMIT);
      c.startPending();
    }
    c.hll = state.hll ? HyperLogLog.fromBase64(state.hll) : null;
    c.sketch = state.sketch ? sketchFromState(state.sketch) : null;
    c.sketchOffset = state.sketchOffset;
    return c;
  }

  /** The narrowest type covering every non-null value. */
  type(): ColumnProfile['type'] {
    const k = this.kinds;
    if (this.nonNull === 0) return 'empty';
    if (k.integer === this.nonNull) return 'integer';
    if (k.integer + k.number === this.nonNull) return 'number';
    if (k.boolean === this.nonNull) return 'boolean';
    if (k.datetime === this.nonNull) return 'datetime';
    return 'string';
  }

  finalize(rowCount: number, { topK, bins }: { topK: number; bins: number }): ColumnProfile {
    this.flushNumbers();
    const type = this.type();
    const numeric = type === 'integer' || type === 'number' || type === 'datetime';
    const min = this.n > 0 ? this.min : null;
    const max = this.n > 0 ? this.max : null;
    // A statistic beyond a double (a mean or a spread of values near ±1.8e308) is unknown: null.
    const show = (x: number | null) =>
      x === null || !Number.isFinite(x) ? null : type === 'datetime' ? new Date(Math.round(x)).toISOString() : x;
    const stdDev = numeric && this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : Number.NaN;
    const entries = this.countEntries();
    const distinct = this.exact
      ? { value: entries.length, estimated: false }
      : { value: Math.max(this.hll?.count() ?? 0, DATASET_EXACT_DISTINCT_LIMIT + 1), estimated: true };
    const top = entries
      .map(([key, count]): [string, number] => [String(key), count])
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, topK)
      .map(([value, count]) => ({ value, count }));
    const profile: ColumnProfile = {
      name: this.name,
      type,
      count: this.nonNull,
      nulls: rowCount - this.nonNull,
      typeCounts: this.kinds,
      distinct,
      min: numeric ? show(min) : type === 'string' ? this.textMin : null,
      max: numeric ? show(max) : type === 'string' ? this.textMax : null,
      mean: numeric && this.n > 0 ? show(this.exactMean()) : null,
      // Sample standard deviation (n − 1), as pandas and R report it; in milliseconds for date/time.
      stdDev: Number.isFinite(stdDev) ? stdDev : null,
      quantiles: null,
      quantilesEstimated: !this.exact,
      topK: top,
      topKEstimated: !this.exact,
      histogram: null,
    };
    if (!numeric || min === null || max === null) return profile;

    const distribution = this.distribution(entries);
    const quantiles = {} as Record<(typeof DATASET_QUANTILES)[number], number | string | null>;
    for (const name of DATASET_QUANTILES) {
      const q = QUANTILE_OF[name];
      const x =
        this.exact || !this.sketch
          ? exactQuantile(distribution, this.n, q)
          : this.sketch.getValueAtQuantile(q) + this.sketchOffset;
      quantiles[name] = show(Math.min(max, Math.max(min, x)));
    }
    profile.quantiles = quantiles;
    profile.histogram = { estimated: !this.exact, bins: this.histogram(distribution, bins, show) };
    return profile;
  }

  /** `[value, count]` pairs sorted by value: exact counts, or the sketch's bins. */
  private distribution(entries: [CountKey, number][]): [number, number][] {
    if (!this.exact && this.sketch) {
      return sketchBins(this.sketch).map(([v, c]) => [v + this.sketchOffset, c] as [number, number]);
    }
    const pairs: [number, number][] = [];
    for (const [key, count] of entries) {
      const x = this.numericOfKey(key);
      if (!Number.isNaN(x)) pairs.push([x, count]);
    }
    return pairs.sort((a, b) => a[0] - b[0]);
  }

  private histogram(
    distribution: [number, number][],
    bins: number,
    show: (x: number | null) => number | string | null,
  ): { lower: number | string | null; upper: number | string | null; count: number }[] {
    const { min, max } = this;
    // Where max − min is beyond a double (values near ±1.8e308 of both signs), the bins are
    // computed on halves, which cannot overflow; otherwise `h` is 1 and changes nothing.
    const h = Number.isFinite(max - min) ? 1 : 0.5;
    const width = (max * h - min * h) / bins;
    const counts = new Array<number>(width > 0 ? bins : 1).fill(0);
    for (const [value, count] of distribution) {
      const clamped = Math.min(max, Math.max(min, value));
      // Equal-width bins, each [lower, upper) but the last, which includes max.
      const i = width > 0 ? Math.min(bins - 1, Math.floor((clamped * h - min * h) / width)) : 0;
      counts[i] = (counts[i] ?? 0) + count;
    }
    const edge = (i: number) => (min * h + i * width) / h;
    return counts.map((count, i) => ({
      lower: show(width > 0 ? edge(i) : min),
      upper: show(width > 0 ? (i === counts.length - 1 ? max : edge(i + 1)) : max),
      count,
    }));
  }
}
