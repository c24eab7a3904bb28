import {
  type Config,
  cronIssues,
  cronShortestGapMs,
  isTimeZone,
  newScheduleId,
  type ScheduleDef,
  type ScheduleRecord,
  type ScheduleStore,
  type ScheduleTiming,
  type ScheduleView,
  type TimingIssue,
  toScheduleView,
} from '@longhaul/shared';
import { HttpError, notFound } from '../http/http-error.ts';
import { contractFor, validAnalysisInput } from '../jobs/analysis-input.ts';
import type { CreateScheduleBody, ListSchedulesQuery, UpdateScheduleBody } from './schemas.ts';

export interface ScheduleServiceDeps {
  config: Config;
  store: ScheduleStore;
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : undefined);

/** The schedule use-cases behind the HTTP routes. */
export function createScheduleService({ config, store }: ScheduleServiceDeps) {
  const minIntervalMs = config.limits.scheduleMinIntervalMs;

  /**
   * Every problem of a timing at once, each with where it is: cron fields, interval, zone, bounds.
   * With `changed` (a PATCH), only the checks that involve a field it sets: the rest was valid when
   * it was set, and a client must not get a 400 about a field it did not send (an `endAt` that has
   * since passed, a minimum interval raised since).
   */
  function checkTiming(t: ScheduleTiming, changed?: ReadonlySet<keyof ScheduleTiming>): void {
    const touches = (...fields: (keyof ScheduleTiming)[]) => !changed || fields.some((f) => changed.has(f));
    const issues: TimingIssue[] = [];
    if (touches('cron', 'everyMs') && (t.cron === undefined) === (t.everyMs === undefined)) {
      issues.push({ path: '(body)', message: 'give exactly one of `cron` and `everyMs`' });
    }
    if (touches('timezone') && t.timezone !== undefined && !isTimeZone(t.timezone)) {
      issues.push({ path: 'timezone', message: `unknown time zone "${t.timezone}" (use an IANA name)` });
    }
    if (touches('everyMs') && t.everyMs !== undefined && t.everyMs < minIntervalMs) {
      issues.push({ path: 'everyMs', message: `must be at least ${minIntervalMs} ms (SCHEDULE_MIN_INTERVAL_MS)` });
    }
    // A zone changes a cron's shortest gap (daylight saving time).
    if (touches('cron', 'timezone') && t.cron !== undefined) {
      const cron = cronIssues(t.cron);
      issues.push(...cron);
      if (cron.length === 0 && cronShortestGapMs(t.cron, t.timezone) < minIntervalMs) {
        issues.push({
          path: 'cron',
          message: `fires more often than every ${minIntervalMs} ms (SCHEDULE_MIN_INTERVAL_MS)`,
        });
      }
    }
    if (t.endAt !== undefined) {
      if (touches('endAt') && t.endAt <= Date.now()) issues.push({ path: 'endAt', message: 'must be in the future' });
      if (touches('startAt', 'endAt') && t.startAt !== undefined && t.endAt <= t.startAt)
        issues.push({ path: 'endAt', message: 'must be after startAt' });
    }
    if (issues.length > 0) {
      throw new HttpError(400, 'validation_failed', 'the schedule timing is not valid', issues);
    }
  }

  async function own(tenant: string, id: string): Promise<ScheduleRecord> {
    const record = await store.get(tenant, id);
    // Another tenant's schedule answers exactly like a missing one.
    if (!record) throw notFound('schedule');
    return record;
  }

  return {
    async create(tenant: string, body: CreateScheduleBody): Promise<ScheduleView> {
      if (body.webhook !== undefined) {
        // A delivery is the BullMQ parent of its job, added with it; a scheduler adds runs alone.
        throw new HttpError(400, 'bad_request', 'webhooks are not supported on schedules; poll or stream each run');
      }
      const contract = contractFor(body.type);
      const input = validAnalysisInput(body.type, body.input).input;
      const timing: ScheduleTiming = {
        cron: body.cron,
        everyMs: body.everyMs,
        timezone: body.timezone,
        startAt: ms(body.startAt),
        endAt: ms(body.endAt),
        limit: body.limit,
      };
      checkTiming(timing);
      const def: ScheduleDef = {
        type: body.type,
        input,
        timing: JSON.parse(JSON.stringify(timing)),
        priority: body.priority,
        overlap: body.overlap ?? 'skip',
        paused: false,
      };
      const created = await store.create(tenant, newScheduleId(), def, contract);
      if (created === 'full') {
        const quota = config.limits.schedulesPerTenant;
        throw new HttpError(
          429,
          'schedule_quota_exceeded',
          `this tenant already has ${quota} schedules, its quota; delete one first`,
          { quota },
          { 'Retry-After': '60' },
        );
      }
      return toScheduleView(created);
    },

    /** A page of the tenant's schedules, oldest first, and the cursor of the next page. */
    async list(
      tenant: string,
      q: ListSchedulesQuery,
    ): Promise<{ schedules: ScheduleView[]; nextCursor: string | null }> {
      const { records, nextCursor } = await store.list(tenant, q.cursor, q.limit);
      return { schedules: records.map(toScheduleView), nextCursor };
    },

    async get(tenant: string, id: string): Promise<ScheduleView> {
      return toScheduleView(await own(tenant, id));
    },

    /** Throws 404 unless the tenant owns the schedule (for `GET /v1/jobs?schedule=`). */
    async assertOwned(tenant: string, id: string): Promise<void> {
      await own(tenant, id);
    },

    async update(tenant: string, id: string, body: UpdateScheduleBody): Promise<ScheduleView> {
      const current = await own(tenant, id);
      const contract = contractFor(current.type);
      const t = { ...current.timing };
      const changed = new Set<keyof ScheduleTiming>();
      for (const field of ['cron', 'everyMs', 'timezone', 'startAt', 'endAt', 'limit'] as const) {
        if (body[field] !== undefined) changed.add(field);
      }
      if (body.cron !== undefined) {
        t.cron = body.cron;
        t.everyMs = undefined;
      }
      if (body.everyMs !== undefined) {
        t.everyMs = body.everyMs;
        if (body.cron === undefined) t.cron = undefined;
      }
      if (body.timezone !== undefined) t.timezone = body.timezone;
      if (body.startAt !== undefined) t.startAt = ms(body.startAt);
      if (body.endAt !== undefined) t.endAt = ms(body.endAt);
      if (body.limit !== undefined) t.limit = body.limit ?? undefined;
      checkTiming(t, changed);
      const def: ScheduleDef = {
        type: current.type,
        input: body.input === undefined ? current.input : validAnalysisInput(current.type, body.input).input,
        timing: JSON.parse(JSON.stringify(t)),
        priority: body.priority ?? current.priority,
        overlap: body.overlap ?? current.overlap,
        paused: body.paused ?? current.paused,
      };
      const updated = await store.update(tenant, current, def, contract);
      if (!updated) throw notFound('schedule');
      return toScheduleView(updated);
    },

    /** Deletes the schedule; answers its last view. Runs already made stay readable as jobs. */
    async remove(tenant: string, id: string): Promise<ScheduleView> {
      const last = await own(tenant, id);
      await store.remove(tenant, id);
      return toScheduleView({ ...last, nextRunAt: null });
    },
  };
}

export type ScheduleService = ReturnType<typeof createScheduleService>;
