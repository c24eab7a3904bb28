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
