import { longDecimal } from './long-decimal.ts';

/** What one value is, once nulls are set aside. A column's type is the narrowest kind covering all its values. */
export type ValueKind = 'integer' | 'number' | 'boolean' | 'datetime' | 'string';

/** A classified value: its kind, its key for counting, and its position on a number line (numbers, dates). */
export interface Classified {
  kind: ValueKind;
  /** The value as counted for distinct/top-k: numbers normalised (`1.0` → `1`), others as given. */
  key: string;
  /** The number, or the date's epoch milliseconds; `NaN` for booleans and strings. */
  numeric: number;
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
// ISO 8601 dates and date-times only: other formats are ambiguous (is 03/04/2024 March or April?).
const DATETIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

const isBoolean = (v: string) => {
  const lower = v.toLowerCase();
  return lower === 'true' || lower === 'false';
};

/** Classifies a non-null text value (CSV fields, JSON strings). */
export function classifyText(raw: string): Classified {
  const v = raw.trim();
  if (INTEGER.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return { kind: 'integer', key: String(n), numeric: n };
    return { kind: 'number', key: String(n), numeric: n };
  }
  if (NUMBER.test(v)) {
    const n = Number(v);
    if (Number.isFinite(n)) return { kind: 'number', key: String(n), numeric: n };
  }
  if (isBoolean(v)) return { kind: 'boolean', key: v.toLowerCase(), numeric: Number.NaN };
  if (DATETIME.test(v)) {
    // A date/time without a zone is read as UTC, so a profile never depends on the worker's TZ.
    const iso = v.length === 10 ? `${v}T00:00:00Z` : v.replace(' ', 'T');
    const ms = Date.parse(/(?:Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`);
    if (Number.isFinite(ms)) return { kind: 'datetime', key: v, numeric: ms };
  }
  return { kind: 'string', key: raw, numeric: Number.NaN };
}

/** Classifies a JSON value (NDJSON); `null` for JSON null. Objects and arrays count as their JSON text. */
export function classifyJson(value: unknown): Classified | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return null;
    return Number.isSafeInteger(value)
      ? { kind: 'integer', key: String(value), numeric: value }
      : { kind: 'number', key: String(value), numeric: value };
  }
  if (typeof value === 'boolean') return { kind: 'boolean', key: String(value), numeric: Number.NaN };
  if (typeof value === 'string') {
    // JSON already types numbers and booleans: a JSON string is a date/time or a string, never a number.
    const c = classifyText(value);
    return c.kind === 'datetime' ? c : { kind: 'string', key: value, numeric: Number.NaN };
  }
  return { kind: 'string', key: JSON.stringify(value), numeric: Number.NaN };
}

/** {@link ValueKind}s by their code, the index the hot path counts them under. */
export const VALUE_KINDS: readonly ValueKind[] = ['integer', 'number', 'boolean', 'datetime', 'string'];
export const KIND_INTEGER = 0;
export const KIND_NUMBER = 1;
export const KIND_BOOLEAN = 2;
export const KIND_DATETIME = 3;
export const KIND_STRING = 4;

/**
 * A value's key for distinct counts and top-k. A number is keyed by itself, which stands for the
 * canonical text `String(n)` that {@link classifyText} keys it by: the two are in one-to-one
 * correspondence (a `Map` equates 0 and -0, as `String` does), and no text key of another kind
 * reads as a canonical number, so counting either way gives the same counts. Numbers as keys
 * spare the hot path a string per value.
 */
export type CountKey = string | number;

/**
 * A key to keep: `key` in a string of its own. A slice of 13 or more characters of a decoded batch
 * is a view of the whole batch in V8 (a sliced string), so a counted key would otherwise keep its
 * 64 KiB batch alive for as long as it is counted. A number, or a shorter string (always copied),
 * is returned as it is.
 */
export function ownKey(key: CountKey): CountKey {
  return typeof key === 'string' && key.length >= 13 ? ` ${key}`.slice(1) : key;
}

/** The count key for a text key: the number when the text is a canonical finite number (see {@link CountKey}). */
export function countKeyOf(key: string): CountKey {
  const c = key.charCodeAt(0);
  if (!((c >= 48 && c <= 57) || c === 45)) return key;
  const n = Number(key);
  return Number.isFinite(n) && String(n) === key ? n : key;
}

/** A value as the hot path sees it, with no object per value: what {@link FieldClassifier} leaves in its fields. */
export interface FieldValue {
  kind: number;
  /** The number, or the date's epoch milliseconds; `NaN` for booleans and strings. */
  numeric: number;
  /**
   * The count key of a value that is not a number and has no `keyStart`. A number (kind integer
   * or number) is counted under `numeric` itself, and `key` is left as it was: storing a double in
   * a field that also holds strings boxes it, once per value.
   */
  key: CountKey;
  /**
   * When `keyStart >= 0`, the key is `text.slice(keyStart, keyEnd)` (and `key` is left as it was):
   * a date-time's or a string's own text, counted and hashed where it lies, cut out as a string
   * only when needed. A number key is hashed by its bits instead.
   */
  text: string;
  keyStart: number;
  keyEnd: number;
}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
const isDigit = (c: number) => c >= 48 && c <= 57;
/** The ASCII characters `String.prototype.trim` removes; other characters it removes are all non-ASCII. */
const isAsciiSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);
/** The characters above ASCII that `String.prototype.trim` removes (Unicode's Zs, U+2028, U+2029, U+FEFF). */
const isWideSpace = (c: number) =>
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff;

/** The two decimal digits at `at` as a number, or -1. */
function twoDigits(text: string, at: number): number {
  const a = text.charCodeAt(at) - 48;
  const b = text.charCodeAt(at + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** Days from 1970-01-01 to year-month-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
function daysToMonth(year: number, month: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5);
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * Classifies CSV fields where they lie in the decoded text, exactly as {@link classifyText} would
 * (the unit tests check the two agree), but without a string or an object per value for numbers,
 * booleans, nulls and common ISO date-times: the fields it leaves ({@link FieldValue}) are read by
 * `ColumnStats.addValue` straight away. Anything unusual (non-ASCII at the edges, long or exotic
 * numbers, time zones) takes the slow path through {@link classifyText}.
 */
export class FieldClassifier implements FieldValue {
  kind = KIND_STRING;
  numeric = Number.NaN;
  key: CountKey = '';
  text = '';
  keyStart = -1;
  keyEnd = -1;
  private readonly nulls: Set<string>;
  /**
   * The null values by their first character (ASCII only: the hot path asks only for ASCII), so
   * a value is compared in place with the few that could match, with no string cut out of it.
   */
  private readonly nullsByFirst: (string[] | undefined)[] = new Array(128).fill(undefined);
  private readonly emptyIsNull: boolean;
  /** Whether a null value starts or ends beyond ASCII (then such values are looked up whole). */
  private readonly wideNulls: boolean;
  /** What {@link splitDigits} leaves. */
  private head = 0;
  private significant = 0;
  private tail = 0;
  /** The last year and month a date-time was read in (`year * 100 + month`), and its day count. */
  private lastMonth = -1;
  private lastMonthDays = 0;

  constructor(nullValues: readonly string[]) {
    this.nulls = new Set(nullValues);
    this.emptyIsNull = this.nulls.has('');
    this.wideNulls = [...this.nulls].some((v) => v.charCodeAt(0) > 127 || v.charCodeAt(v.length - 1) > 127);
    for (const v of this.nulls) {
      if (v.length === 0) continue;
      const first = v.charCodeAt(0);
      if (first >= 128) continue;
      const same = this.nullsByFirst[first];
      if (same) same.push(v);
      else this.nullsByFirst[first] = [v];
    }
  }

  /** Classifies `text.slice(start, end)`; `false` when it is a null value. */
  classify(text: string, start: number, end: number): boolean {
    let s = start;
    let e = end;
    let first = text.charCodeAt(s);
    let last = text.charCodeAt(e - 1);
    // Trimmed only when it may need it: a character above the space is none of the ASCII spaces.
    if (!(s < e && first > 32 && last > 32)) {
      while (s < e && isAsciiSpace(text.charCodeAt(s))) s++;
      while (e > s && isAsciiSpace(text.charCodeAt(e - 1))) e--;
      if (s === e) {
        if (this.emptyIsNull) return false;
        return this.classifyReference(text.slice(start, end));
      }
      first = text.charCodeAt(s);
      last = text.charCodeAt(e - 1);
    }
    if (first > 127 || last > 127) {
      // Whitespace `trim` removes, beyond ASCII: the slow path trims it as classifyText does.
      if (isWideSpace(first) || isWideSpace(last)) return this.classifyReference(text.slice(start, end));
      // Otherwise it is text: a number, a boolean or a date-time starts and ends in ASCII.
      if (this.wideNulls && this.nulls.has(text.slice(s, e))) return false;
      return this.string(text, start, end);
    }
    const length = e - s;
    const nulls = this.nullsByFirst[first];
    if (nulls !== undefined) {
      for (const v of nulls) if (v.length === length && text.startsWith(v, s)) return false;
    }
    this.text = text;
    this.keyStart = -1;
    if ((first >= 48 && first <= 57) || first === 43 || first === 45 || first === 46) {
      // Shaped like a date (`YYYY-`): tried as one first. A number of that shape (`1.2e-12345`)
      // still gets its answer, from the slow path.
      const dated = length >= 10 && text.charCodeAt(s + 4) === 45 && isDigit(first);
      if (dated && this.datetime(text, s, e)) return true;
      const parsed = this.number(text, s, e);
      if (parsed === 1) return true;
      if (parsed === 2 || dated) return this.classifyReference(text.slice(start, end));
    } else if (length === 4 || length === 5) {
      if (this.boolean(text, s, length)) return true;
    }
    return this.string(text, start, end);
  }

  /** `text.slice(start, end)` as a string value, its key that text, untrimmed (as classifyText keys it). */
  private string(text: string, start: number, end: number): true {
    this.kind = KIND_STRING;
    this.numeric = Number.NaN;
    this.text = text;
    this.keyStart = start;
    this.keyEnd = end;
    return true;
  }

  /** Classifies a value given as a string (a quoted field with doubled quotes); `false` when null. */
  classifyString(raw: string): boolean {
    return this.classify(raw, 0, raw.length);
  }

  /** The slow path, for what the fast one leaves: {@link classifyText} itself. `false` when null. */
  private classifyReference(raw: string): boolean {
    if (this.nulls.has(raw.trim())) return false;
    const c = classifyText(raw);
    this.kind = VALUE_KINDS.indexOf(c.kind);
    this.numeric = c.numeric;
    // A number's key is `numeric` itself (see FieldValue).
    if (c.kind !== 'integer' && c.kind !== 'number') this.key = c.key;
    this.keyStart = -1;
    return true;
  }

  /**
   * `^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$` on `text[s, e)`: 1 when it is a finite number
   * (set), 0 when it is not a number, 2 when only the slow path can tell.
   */
  private number(text: string, s: number, e: number): 0 | 1 | 2 {
    let i = s;
    const sign = text.charCodeAt(i);
    const negative = sign === 45;
    if (negative || sign === 43) i++;
    // All the digits in `mantissa`: exact while there are at most 15 (below 10^15 < 2^53), the
    // common case, read with no more than a multiply-add a digit; more are split again below.
    let mantissa = 0;
    const intStart = i;
    while (i < e) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      mantissa = mantissa * 10 + d;
      i++;
    }
    const intEnd = i;
    let fracStart = i;
    let dot = false;
    if (i < e && text.charCodeAt(i) === 46) {
      dot = true;
      i++;
      fracStart = i;
      while (i < e) {
        const d = text.charCodeAt(i) - 48;
        if (d < 0 || d > 9) break;
        mantissa = mantissa * 10 + d;
        i++;
      }
    }
    const intDigits = intEnd - intStart;
    const fracDigits = i - fracStart;
    if (intDigits === 0 && fracDigits === 0) return 0;
    // The first 15 significant digits in `mantissa`, the rest in `tail` (leading zeros are not
    // significant); counted only when there are more than 15 digits.
    let significant = 0;
    let tail = 0;
    if (intDigits + fracDigits > 15) {
      this.splitDigits(text, intStart, intEnd, fracStart, i);
      mantissa = this.head;
      significant = this.significant;
      tail = this.tail;
    }
    let exponent = 0;
    let expDigits = -1;
    if (i < e && (text.charCodeAt(i) | 32) === 101) {
      i++;
      const expSign = text.charCodeAt(i);
      if (expSign === 43 || expSign === 45) i++;
      const expStart = i;
      while (i < e && isDigit(text.charCodeAt(i))) {
        exponent = exponent * 10 + text.charCodeAt(i) - 48;
        i++;
      }
      expDigits = i - expStart;
      if (expDigits === 0) return 0;
      if (expSign === 45) exponent = -exponent;
    }
    if (i !== e) return 0;
    const integral = !dot && expDigits < 0;
    if (expDigits > 4) return this.longNumber(text, s, e, integral);
    if (significant > 15) {
      const scale = exponent - fracDigits;
      if (significant > 19 || scale < -22 || scale > 0) return this.longNumber(text, s, e, integral);
      const magnitude = longDecimal(mantissa, significant - 15, tail, scale);
      if (Number.isNaN(magnitude)) return this.longNumber(text, s, e, integral);
      return this.longValue(negative ? -magnitude : magnitude, integral);
    }
    if (integral) {
      const n = negative ? -mantissa : mantissa;
      this.kind = Number.isSafeInteger(n) ? KIND_INTEGER : KIND_NUMBER;
      this.numeric = n;
      return 1;
    }
    const scale = exponent - fracDigits;
    if (scale < -22 || scale > 22) return this.longNumber(text, s, e, false);
    // Clinger's fast path: an exact mantissa times or over an exact power of ten rounds once, correctly.
    const magnitude = scale >= 0 ? mantissa * (POW10[scale] as number) : mantissa / (POW10[-scale] as number);
    const n = negative ? -magnitude : magnitude;
    if (!Number.isFinite(n)) return 2;
    this.kind = KIND_NUMBER;
    this.numeric = n;
    return 1;
  }

  /**
   * The digits `text[intStart, intEnd)` and `text[fracStart, fracEnd)` of a number with more than
   * 15: the first 15 significant ones in `head`, the rest in `tail`, and how many are significant.
   */
  private splitDigits(text: string, intStart: number, intEnd: number, fracStart: number, fracEnd: number): void {
    let head = 0;
    let significant = 0;
    let tail = 0;
    for (let i = intStart; i < fracEnd; i++) {
      if (i === intEnd) i = fracStart;
      if (i === fracEnd) break;
      const d = text.charCodeAt(i) - 48;
      if (head !== 0 || d !== 0) significant++;
      if (significant <= 15) head = head * 10 + d;
      else tail = tail * 10 + d;
    }
    this.head = head;
    this.significant = significant;
    this.tail = tail;
  }

  /**
   * A well-formed number neither fast path reads: more than 19 significant digits, a large
   * exponent, or a rare value too near a rounding boundary for `longDecimal` to tell. `Number`
   * rounds it correctly; an overflow to Infinity is left to the slow path, which counts it as text.
   */
  private longNumber(text: string, s: number, e: number, integral: boolean): 1 | 2 {
    const n = Number(text.slice(s, e));
    return Number.isFinite(n) ? this.longValue(n, integral) : 2;
  }

  /** A long number read: an integer while written without point or exponent and safe, else a number. */
  private longValue(n: number, integral: boolean): 1 {
    this.kind = integral && Number.isSafeInteger(n) ? KIND_INTEGER : KIND_NUMBER;
    this.numeric = n;
    return 1;
  }

  private boolean(text: string, s: number, length: number): boolean {
    const c0 = text.charCodeAt(s) | 32;
    const c1 = text.charCodeAt(s + 1) | 32;
    const c2 = text.charCodeAt(s + 2) | 32;
    const c3 = text.charCodeAt(s + 3) | 32;
    if (length === 4 && c0 === 116 && c1 === 114 && c2 === 117 && c3 === 101) this.key = 'true';
    else if (
      length === 5 &&
      c0 === 102 &&
      c1 === 97 &&
      c2 === 108 &&
      c3 === 115 &&
      (text.charCodeAt(s + 4) | 32) === 101
    )
      this.key = 'false';
    else return false;
    this.kind = KIND_BOOLEAN;
    this.numeric = Number.NaN;
    return true;
  }

  /**
   * `YYYY-MM-DD`, optionally `[T ]HH:MM[:SS[.fraction]]` and `Z` or an offset `±HH[:]MM`, in the
   * ranges where `Date.parse` reads them plainly: month 1–12, day 1–31 (V8 rolls 30 February over
   * into March, so do we), hour 0–23, minute and second 0–59, milliseconds the fraction's first
   * three digits. Anything else (hour 24, say) is left to the slow path, which asks `Date.parse`.
   */
  private datetime(text: string, s: number, e: number): boolean {
    const y1 = twoDigits(text, s);
    const y2 = twoDigits(text, s + 2);
    const month = twoDigits(text, s + 5);
    const day = twoDigits(text, s + 8);
    if (y1 < 0 || y2 < 0 || month < 1 || month > 12 || day < 1 || day > 31 || text.charCodeAt(s + 7) !== 45) {
      return false;
    }
    // A column's date-times mostly share their month with the one before (a block is one column).
    const year = y1 * 100 + y2;
    const yearMonth = year * 100 + month;
    if (yearMonth !== this.lastMonth) {
      this.lastMonth = yearMonth;
      this.lastMonthDays = daysToMonth(year, month);
    }
    let ms = (this.lastMonthDays + day - 1) * 86_400_000;
    let i = s + 10;
    if (i < e) {
      const sep = text.charCodeAt(i);
      if ((sep !== 84 && sep !== 32) || e - i < 6 || text.charCodeAt(i + 3) !== 58) return false;
      const hour = twoDigits(text, i + 1);
      const minute = twoDigits(text, i + 4);
      if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return false;
      ms += hour * 3_600_000 + minute * 60_000;
      i += 6;
      if (i < e && text.charCodeAt(i) === 58) {
        if (e - i < 3) return false;
        const second = twoDigits(text, i + 1);
        if (second < 0 || second > 59) return false;
        ms += second * 1000;
        i += 3;
        if (i < e && text.charCodeAt(i) === 46) {
          i++;
          const fracStart = i;
          let millis = 0;
          while (i < e && isDigit(text.charCodeAt(i))) {
            if (i - fracStart < 3) millis = millis * 10 + text.charCodeAt(i) - 48;
            i++;
          }
          const digits = i - fracStart;
          if (digits < 1 || digits > 9) return false;
          ms += digits >= 3 ? millis : digits === 2 ? millis * 10 : millis * 100;
        }
      }
      if (i < e) {
        const zone = text.charCodeAt(i);
        if (zone === 90) i++;
        else if (zone === 43 || zone === 45) {
          // `±HH:MM` or `±HHMM`, the offset from UTC: Date.parse takes hours 0–23, minutes 0–59.
          const colon = text.charCodeAt(i + 3) === 58 ? 1 : 0;
          if (e - i !== 5 + colon) return false;
          const hours = twoDigits(text, i + 1);
          const minutes = twoDigits(text, i + 3 + colon);
          if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return false;
          const offset = (hours * 60 + minutes) * 60_000;
          ms += zone === 43 ? -offset : offset;
          i = e;
        }
      }
      if (i !== e) return false;
    }
    this.kind = KIND_DATETIME;
    this.numeric = ms;
    this.keyStart = s;
    this.keyEnd = e;
    return true;
  }
}
