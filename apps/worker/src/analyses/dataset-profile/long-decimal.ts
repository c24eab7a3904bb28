/**
 * Correct rounding of decimals with 16 to 19 significant digits, as a double's shortest form
 * often has (Python, pandas and JavaScript write floats so), without making a string for `Number`.
 *
 * The digits `M = head · 10^tailDigits + tail` (head below 10^15, tail below 10^tailDigits ≤ 10^4)
 * stand for `M · 10^scale`. Below 2^64, M is held exactly as two doubles (every step an error-free
 * transformation of integers: Dekker's product, Knuth's sum); a first quotient q by the exact power
 * of ten P = 10^-scale is then within an ulp of the true value, and the exact remainder M − q·P
 * says which of q and its two neighbours is nearest. When the remainder is too close to half an
 * ulp to tell (or q is a power of two, whose neighbours are not equally far), the answer is NaN
 * and the caller asks `Number`.
 */

/** Dekker's splitter for doubles: 2^27 + 1. */
const SPLIT = 134_217_729;
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** `ULP[e]`: the distance between consecutive doubles whose biased exponent is e. */
const ULP = Float64Array.from({ length: 2047 }, (_, e) => 2 ** (Math.max(e, 1) - 1075));
const float = new Float64Array(1);
const words = new Uint32Array(float.buffer);

/** The rounding error of `p = a * b`: `a * b - p` exactly (Dekker 1971; no overflow here). */
function productError(a: number, b: number, p: number): number {
  let c = SPLIT * a;
  const ah = c - (c - a);
  const al = a - ah;
  c = SPLIT * b;
  const bh = c - (c - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

/**
 * `(head · 10^tailDigits + tail) · 10^scale`, correctly rounded, for `-22 <= scale <= 0`, or NaN
 * when it cannot tell (rarely: a value within 2^-20 of an ulp of a rounding boundary).
 */
export function longDecimal(head: number, tailDigits: number, tail: number, scale: number): number {
  // M = mh + ml exactly, with mh = M rounded to a double.
  const p10 = POW10[tailDigits] as number;
  const p = head * p10;
  const pErr = productError(head, p10, p);
  const s = p + tail;
  const back = s - p;
  const sErr = p - (s - back) + (tail - back);
  const low = pErr + sErr;
  const mh = s + low;
  const ml = low - (mh - s);
  if (scale === 0) return mh;
  const P = POW10[-scale] as number;
  const q = mh / P;
  // M − q·P, with q·P as a double and its error; mh − qp is exact (the two are within a factor of two).
  const qp = q * P;
  const remainder = mh - qp - productError(q, P, qp) + ml;
  const t = remainder / P;
  float[0] = q;
  const high = words[1] as number;
  const biased = (high >>> 20) & 0x7ff;
  if (biased === 0 || ((high & 0xfffff) === 0 && words[0] === 0)) return Number.NaN;
  const ulp = ULP[biased] as number;
  const margin = ulp * 2 ** -20;
  const off = Math.abs(t);
  if (off < ulp / 2 - margin) return q;
  if (off > ulp / 2 + margin && off < ulp * 1.5 - margin) return t > 0 ? q + ulp : q - ulp;
  return Number.NaN;
}
