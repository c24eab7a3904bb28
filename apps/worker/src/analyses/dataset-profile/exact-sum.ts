/**
 * The exact sum of many doubles, rounded once at the end: Shewchuk's non-overlapping partials
 * ("Adaptive Precision Floating-Point Arithmetic", 1997), with the final rounding of Python's
 * `math.fsum`.
 *
 * Why: a column's mean must not depend on the order its values were added in. A running mean
 * (Welford) or a plain `+=` rounds after every value, so a profile read in one pass and the same
 * profile merged from byte ranges would differ in the last bits. The partials hold the sum
 * exactly, merge exactly ({@link addSum}), and {@link value} is the correctly rounded sum: a
 * function of the multiset of values alone.
 *
 * Cost: a value usually meets one to three partials (a two-sum each). A sum that overflows a double
 * stops being tracked and reads as NaN; the caller then falls back to its running mean.
 */
export class ExactSum {
  /**
   * Non-overlapping, by increasing magnitude, in `partials[0, count)`; their exact sum is the sum
   * of every value added. A typed array with a count: resizing a plain array on every value cost
   * more than the arithmetic.
   */
  private partials: Float64Array;
  private count: number;
  private overflowed: boolean;

  constructor(partials: readonly number[] = [], overflowed = false) {
    this.partials = new Float64Array(Math.max(8, partials.length));
    this.partials.set(partials);
    this.count = partials.length;
    this.overflowed = overflowed;
  }

  add(value: number): void {
    if (this.overflowed) return;
    const p = this.partials;
    const n = this.count;
    let x = value;
    let i = 0;
    for (let j = 0; j < n; j++) {
      let y = p[j] as number;
      if (Math.abs(x) < Math.abs(y)) {
        const t = x;
        x = y;
        y = t;
      }
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) p[i++] = lo;
      x = hi;
    }
    if (!Number.isFinite(x)) {
      this.overflowed = true;
      this.count = 0;
      return;
    }
    if (i === p.length) {
      this.partials = new Float64Array(p.length * 2);
      this.partials.set(p);
    }
    (this.partials as Float64Array)[i] = x;
    this.count = i + 1;
  }

  /** Adds every value `other` summed, exactly. */
  addSum(other: ExactSum): void {
    if (other.overflowed) {
      this.overflowed = true;
      this.count = 0;
      return;
    }
    for (let j = 0; j < other.count; j++) this.add(other.partials[j] as number);
  }

  /** The sum, correctly rounded to a double; NaN after an overflow. */
  value(): number {
    if (this.overflowed) return Number.NaN;
    const p = this.partials;
    let n = this.count;
    if (n === 0) return 0;
    let hi = p[--n] as number;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      const y = p[--n] as number;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // Half-way cases: the partials below `lo` decide which way to round (math.fsum does the same).
    const below = n > 0 ? (p[n - 1] as number) : 0;
    if ((lo < 0 && below < 0) || (lo > 0 && below > 0)) {
      const y = lo * 2;
      const x = hi + y;
      if (y === x - hi) hi = x;
    }
    // A zero sum is +0: JSON (checkpoints, part results) writes -0 as 0, so a -0 would read back
    // as +0 and a merged sum would differ from one pass.
    return hi === 0 ? 0 : hi;
  }

  /** The partials as plain numbers, for checkpoints and part results (JSON keeps doubles exactly). */
  toState(): number[] | null {
    return this.overflowed ? null : Array.from(this.partials.subarray(0, this.count));
  }

  static fromState(state: number[] | null): ExactSum {
    return state === null ? new ExactSum([], true) : new ExactSum(state);
  }
}
