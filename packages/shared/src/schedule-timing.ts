import { CronExpressionParser } from 'cron-parser';

/**
 * Validation and next-run arithmetic of schedule timings, with cron-parser: the same library and
 * version BullMQ's job schedulers use, so what we validate is what BullMQ will compute.
 */

/** A problem with a timing, where it is (`cron.minute`, `timezone`, ...) and what is wrong. */
export interface TimingIssue {
  path: string;
  message: string;
}

const FIVE_FIELDS = ['minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'] as const;
const SIX_FIELDS = ['second', ...FIVE_FIELDS] as const;

/** Whether `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function tryParse(expression: string, tz?: string): string | null {
  try {
    CronExpressionParser.parse(expression, tz ? { tz } : {});
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * The issues of a cron expression, field by field: each field is parsed alone (the others set to
 * `*`), so the error names the field that is wrong. Five fields (minute first) or six (second first).
 */
export function cronIssues(expression: string): TimingIssue[] {
  const parts = expression.trim().split(/\s+/);
  if (expression.trim().startsWith('@')) {
    const err = tryParse(expression);
    return err ? [{ path: 'cron', message: err }] : [];
  }
  if (parts.length !== 5 && parts.length !== 6) {
    return [
      {
        path: 'cron',
        message: `expected 5 fields (minute hour day month weekday) or 6 (second first), got ${parts.length}`,
      },
    ];
  }
  const names = parts.length === 5 ? FIVE_FIELDS : SIX_FIELDS;
  const issues: TimingIssue[] = [];
  for (const i of parts.keys()) {
    const alone = parts.map((p, j) => (j === i ? p : '*')).join(' ');
    const err = tryParse(alone);
    if (err) issues.push({ path: `cron.${names[i]}`, message: err });
  }
  if (issues.length === 0) {
    const err = tryParse(expression);
    if (err) issues.push({ path: 'cron', message: err });
  }
  return issues;
}

/** The smallest cyclic gap between sorted values of a field that wraps at `modulo`. */
function smallestGap(values: number[], modulo: number): number {
  let gap = modulo;
  let prev = (values.at(-1) ?? 0) - modulo;
  for (const v of values) {
    gap = Math.min(gap, v - prev);
    prev = v;
  }
  return gap;
}

/**
 * A lower bound of the time between two runs of a (valid) cron expression: from its second and
 * minute fields, which set the shortest gaps, and from its next 50 runs, whichever is smaller.
 * Conservative: an expression is never let through that can fire more often than this says.
 */
export function cronShortestGapMs(expression: string, tz?: string): number {
  const expr = CronExpressionParser.parse(expression, tz ? { tz } : {});
  const seconds = [...expr.fields.second.values].map(Number).sort((a, b) => a - b);
  const minutes = [...expr.fields.minute.values].map(Number).sort((a, b) => a - b);
  let bound: number;
  if (seconds.length > 1) bound = smallestGap(seconds, 60) * 1000;
  else if (minutes.length > 1) bound = smallestGap(minutes, 60) * 60_000;
  else bound = 3_600_000;
  let prev: number | null = null;
  for (let i = 0; i < 50 && expr.hasNext(); i++) {
    const at = expr.next().getTime();
    if (prev !== null) bound = Math.min(bound, at - prev);
    prev = at;
  }
  return bound;
}

/** The first run of a cron expression after `from`, in the time zone `tz` (UTC when not given). */
export function nextCronRun(expression: string, tz: string | undefined, from: Date | number): Date | null {
  const expr = CronExpressionParser.parse(expression, { currentDate: new Date(from), ...(tz ? { tz } : {}) });
  return expr.hasNext() ? expr.next().toDate() : null;
}
