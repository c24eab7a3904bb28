import { isScheduleCursor } from '@longhaul/shared';
import { z } from 'zod';
import { analysisFields, pageFields } from '../jobs/schemas.ts';

const when = z.iso.datetime({ offset: true });

/** Timing fields, shared by create and change. Cron and interval bounds are checked afterwards. */
const timing = {
  cron: z
    .string()
    .min(1)
    .max(200)
    .describe('Cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 (second first).'),
  everyMs: z
    .number()
    .int()
    .min(1)
    .max(366 * 86_400_000)
    .describe('Run every this many milliseconds (at least SCHEDULE_MIN_INTERVAL_MS, 10000 by default).'),
  timezone: z.string().min(1).max(64).describe('IANA time zone of `cron`, e.g. Europe/Paris. UTC when not given.'),
  startAt: when.describe('No run before this time (ISO 8601).'),
  endAt: when.describe('No run after this time (ISO 8601).'),
  limit: z.number().int().min(1).max(1_000_000).describe('Runs at most.'),
  priority: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .describe('Priority of each run: 1 runs first, 1000 last; 500 when not given.'),
  overlap: z
    .enum(['skip', 'queue'])
    .describe('A run due while the previous run is still active: `skip` it (counted in `skipped`) or `queue` it.'),
};

/** `POST /v1/schedules` body. The input is checked against the analysis' own schema afterwards. */
export const createScheduleBodySchema = z
  .object({
    ...analysisFields,
    cron: timing.cron.optional(),
    everyMs: timing.everyMs.optional(),
    timezone: timing.timezone.optional(),
    startAt: timing.startAt.optional(),
    endAt: timing.endAt.optional(),
    limit: timing.limit.optional(),
    priority: timing.priority.optional(),
    overlap: timing.overlap.optional().describe('`skip` (default) or `queue`.'),
    webhook: z.unknown().optional().describe('Not supported on schedules: refused with 400.'),
  })
  .strict()
  .meta({ id: 'CreateSchedule' });

export type CreateScheduleBody = z.infer<typeof createScheduleBodySchema>;

/** `PATCH /v1/schedules/:id`: pause or resume, a new timing (replaces cron/everyMs), a new input. */
export const updateScheduleBodySchema = z
  .object({
    paused: z.boolean().optional().describe('true pauses the schedule (no run is made), false resumes it.'),
    input: z.unknown().optional().describe("A new input, checked against the analysis' schema."),
    cron: timing.cron.optional(),
    everyMs: timing.everyMs.optional(),
    timezone: timing.timezone.optional(),
    startAt: timing.startAt.nullable().optional(),
    endAt: timing.endAt.nullable().optional(),
    limit: timing.limit.nullable().optional(),
    priority: timing.priority.optional(),
    overlap: timing.overlap.optional(),
  })
  .strict()
  .meta({ id: 'UpdateSchedule' });

export type UpdateScheduleBody = z.infer<typeof updateScheduleBodySchema>;

/**
 * `GET /v1/schedules` query: a page of the tenant's schedules, oldest first. The default page
 * holds the default quota (SCHEDULES_PER_TENANT, 100) whole.
 */
export const listSchedulesQuerySchema = z.object(pageFields(isScheduleCursor, 100)).strict();

export type ListSchedulesQuery = z.infer<typeof listSchedulesQuerySchema>;
