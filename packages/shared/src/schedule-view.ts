import { z } from 'zod';
import { DEFAULT_PRIORITY } from './store/job-store.ts';
import type { ScheduleRecord } from './store/schedule-store.ts';

export const scheduleViewSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    input: z.unknown(),
    cron: z.string().nullable(),
    everyMs: z.number().int().nullable(),
    timezone: z.string(),
    startAt: z.string().nullable(),
    endAt: z.string().nullable(),
    limit: z.number().int().nullable(),
    priority: z.number().int(),
    overlap: z.enum(['skip', 'queue']),
    paused: z.boolean(),
    createdAt: z.string(),
    /** Due time of the next run; null when paused or when the schedule has no run left. */
    nextRunAt: z.string().nullable(),
    /** The last run a worker started. */
    lastRun: z.object({ id: z.string(), startedAt: z.string() }).nullable(),
    /** Runs started. */
    runs: z.number().int(),
    /** Runs skipped because the previous one was still active (overlap `skip`). */
    skipped: z.number().int(),
    links: z.object({ self: z.string(), runs: z.string() }),
  })
  .meta({ id: 'ScheduleView' });
export type ScheduleView = z.infer<typeof scheduleViewSchema>;

const iso = (ms: number | undefined | null) => (ms ? new Date(ms).toISOString() : null);

/** The one mapping from a stored schedule to the public schedule view. */
export function toScheduleView(r: ScheduleRecord): ScheduleView {
  const { timing } = r;
  return {
    id: r.id,
    type: r.type,
    input: r.input,
    cron: timing.cron ?? null,
    everyMs: timing.everyMs ?? null,
    timezone: timing.timezone ?? 'UTC',
    startAt: iso(timing.startAt),
    endAt: iso(timing.endAt),
    limit: timing.limit ?? null,
    priority: r.priority ?? DEFAULT_PRIORITY,
    overlap: r.overlap,
    paused: r.paused,
    createdAt: iso(r.createdAt) ?? new Date(0).toISOString(),
    nextRunAt: iso(r.nextRunAt),
    lastRun: r.lastRun ? { id: r.lastRun.id, startedAt: iso(r.lastRun.startedAt) ?? '' } : null,
    runs: r.runs,
    skipped: r.skipped,
    links: { self: `/v1/schedules/${r.id}`, runs: `/v1/jobs?schedule=${r.id}` },
  };
}
