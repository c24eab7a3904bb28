import { hash } from 'node:crypto';
import {
  type Config,
  FINAL_STATUSES,
  getContract,
  type JobSnapshot,
  type JobStore,
  type JobView,
  newJobId,
  type RateWindow,
  type ScheduleStore,
  statusOf,
  tenantStorageBudget,
  toJobView,
} from '@longhaul/shared';
import { HttpError, notFound } from '../http/http-error.ts';
import { validAnalysisInput } from './analysis-input.ts';
import { type ChildPage, listChildren } from './children-route.ts';
import type { ChildrenQuery, ListQuery, SubmitBody } from './schemas.ts';

export interface JobServiceDeps {
  config: Config;
  /** The one owner of job storage. */
  store: JobStore;
  /** Schedules, for `GET /v1/jobs?schedule=`: its runs are listed from the schedule's run list. */
  schedules?: ScheduleStore;
}

export interface Submitted {
  view: JobView;
  /** An Idempotency-Key replay of an earlier submission. */
  replay: boolean;
  /** The tenant's rate-limit window, for the `RateLimit` headers; absent when the limit is off. */
  rate?: RateWindow;
}

/** The IETF draft-7 `RateLimit-Policy` and `RateLimit` headers of a counted submission. */
export function rateLimitHeaders({ limit, hits, resetMs }: RateWindow, windowMs: number): Record<string, string> {
  return {
    'RateLimit-Policy': `${limit};w=${Math.round(windowMs / 1000)}`,
    RateLimit: `limit=${limit}, remaining=${Math.max(0, limit - hits)}, reset=${Math.max(0, Math.ceil(resetMs / 1000))}`,
  };
}

/** The rate limit's window: RATE_LIMIT_PER_MINUTE counts per minute. */
export const RATE_WINDOW_MS = 60_000;

const sha256 = (s: string) => hash('sha256', s, 'hex');

/** JSON with sorted keys, so the same body hashes the same whatever its key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const gone = () =>
  new HttpError(410, 'gone', 'this job finished and its record was removed after the retention period');

/** The job use-cases behind the HTTP routes; each reads like the feature it serves. */
export function createJobService({ config, store, schedules }: JobServiceDeps) {
  const view = (s: JobSnapshot) => toJobView(s, config.retention);

  /** The job, if it exists and belongs to the tenant; 404 otherwise, 410 when retention removed it. */
  async function ownSnapshot(tenant: string, id: string): Promise<JobSnapshot> {
    const owned = await store.snapshot(tenant, id);
    // Another tenant's job answers exactly like a missing one.
    if (owned.kind === 'none') throw notFound();
    if (owned.kind === 'gone') throw gone();
    return owned.snapshot;
  }

  /**
   * `429 rate_limited` with `Retry-After` (seconds to the window's end) and the `RateLimit`
   * headers. The limit is counted in the same script as the admission, so it costs no round trip.
   */
  function rateLimited(rate: RateWindow | undefined): HttpError {
    const limit = rate?.limit ?? config.limits.ratePerMinute;
    const windowSeconds = Math.round(RATE_WINDOW_MS / 1000);
    const retryAfter = Math.max(1, Math.ceil((rate?.resetMs ?? RATE_WINDOW_MS) / 1000));
    return new HttpError(
      429,
      'rate_limited',
      `this tenant may submit ${limit} jobs per ${windowSeconds} s; retry in ${retryAfter} s`,
      { limit, windowSeconds, retryAfterSeconds: retryAfter },
      { 'Retry-After': String(retryAfter), ...(rate ? rateLimitHeaders(rate, RATE_WINDOW_MS) : {}) },
    );
  }

  function backlogFull(quota: number): HttpError {
    return new HttpError(
      429,
      'backlog_quota_exceeded',
      `this tenant already has ${quota} unfinished jobs, its quota; submit more once some finish`,
      { quota },
      { 'Retry-After': '30' },
    );
  }

  function storageFull(budget: number): HttpError {
    return new HttpError(
      429,
      'storage_quota_exceeded',
      `this tenant's stored inputs and results have reached its storage budget of ${budget} bytes (TENANT_STORAGE_BYTES); space frees as retention removes finished jobs`,
      { budget },
      { 'Retry-After': '60' },
    );
  }

  return {
    /** The tenant's job snapshot (404/410 like every route), for the event stream. */
    snapshot: ownSnapshot,
    view,
    /** The stored result's raw bytes; read only after `get` said the job completed. */
    storedResult: (id: string) => store.storedResult(id),

    /**
     * Admission (rate limit, Idempotency-Key, storage budget, backlog quota), then the job and
     * everything reads need: one script, one round trip, for most submissions (`store.submit`).
     * A replay never adds a job again: it answers with the job as it is now, or 410 once it is
     * gone. Only when the first request's job never landed (its add was a second round trip that
     * failed) does a replay add it, under the same id.
     */
    async submit(tenant: string, body: SubmitBody, idempotencyKey?: string): Promise<Submitted> {
      // Validated, but stored as sent: the worker parses it again and fills the defaults then, so
      // the job hash keeps no default values (they cost Redis memory in every retained job).
      const { name } = validAnalysisInput(body.type, body.input);
      const input = body.input;
      if (body.webhook && !config.webhooks.secrets.has(tenant)) {
        // Unsigned deliveries could be forged by anyone who learns the URL: no secret, no webhook.
        throw new HttpError(400, 'bad_request', 'webhooks are not configured for this tenant (no signing secret)');
      }
      const idempotency =
        idempotencyKey === undefined
          ? undefined
          : { keyHash: sha256(idempotencyKey), bodyHash: sha256(canonical(body)) };
      // What BullMQ stores of the input, counted against the tenant's storage budget.
      // Serialised only when a budget applies: the submit path is hot, and the size is otherwise unused.
      const inputBytes =
        tenantStorageBudget(config.limits, tenant) > 0 ? Buffer.byteLength(JSON.stringify(input) ?? '') : 0;
      const submission = {
        tenant,
        id: newJobId(),
        contract: getContract(name),
        input,
        priority: body.priority,
        delayMs: body.delayMs,
        webhookUrl: body.webhook?.url,
      };
      let { admission, accepted } = await store.submit(submission, idempotency, inputBytes);
      const { rate } = admission;
      const rated = rate ? { rate } : {};
      if (admission.kind === 'rate_limited') throw rateLimited(rate);
      if (admission.kind === 'replay') {
        if (admission.bodyHash !== idempotency?.bodyHash) {
          throw new HttpError(
            409,
            'idempotency_conflict',
            'this Idempotency-Key was used with a different request body',
            {
              jobId: admission.id,
            },
          );
        }
        const id = admission.id;
        const owned = await store.snapshot(tenant, id);
        if (owned.kind === 'job') return { view: view(owned.snapshot), replay: true, ...rated };
        if (owned.kind === 'gone') throw gone();
        // The first request claimed the key but its job never landed: finish it, under its id
        // (this request was counted against the rate limit already).
        ({ admission, accepted } = await store.submit({ ...submission, id }, undefined, inputBytes, {
          countRate: false,
        }));
        if (accepted) return { view: view(accepted), replay: true, ...rated };
      }
      if (admission.kind === 'backlog_full') throw backlogFull(admission.quota);
      if (admission.kind === 'storage_full') throw storageFull(admission.budget);
      if (!accepted) throw new Error(`submission ${submission.id} was admitted (${admission.kind}) but not added`);
      return { view: view(accepted), replay: false, ...rated };
    },

    async get(tenant: string, id: string): Promise<JobView> {
      return view(await ownSnapshot(tenant, id));
    },

    async result(tenant: string, id: string): Promise<{ view: JobView; result?: unknown }> {
      const s = await ownSnapshot(tenant, id);
      const v = view(s);
      if (v.status !== 'completed') return { view: v };
      return { view: v, result: await store.result(id) };
    },

    /** Cancels the job: see `JobStore.cancel`. A finished job answers 409. */
    async cancel(tenant: string, id: string): Promise<JobView> {
      const s = await ownSnapshot(tenant, id);
      const status = statusOf(s);
      if ((FINAL_STATUSES as string[]).includes(status)) {
        throw new HttpError(409, 'already_finished', `the job is already ${status}`, { status });
      }
      const outcome = await store.cancel(tenant, id);
      if (outcome === 'gone') throw gone();
      return view(await ownSnapshot(tenant, id));
    },

    /** A page of the children a job started (`ctx.spawn`), in order; 404/410 as for the job. */
    children(tenant: string, id: string, q: ChildrenQuery): Promise<ChildPage> {
      return listChildren({ store, snapshot: ownSnapshot, view }, tenant, id, q);
    },

    /** The tenant's jobs, newest first, filtered, a page at a time (cursor = last id seen). */
    async list(tenant: string, q: ListQuery): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
      const jobs: JobView[] = [];
      let listIds = store.listIds;
      if (q.schedule) {
        // Runs are not in the tenant's index (the API did not submit them): the schedule lists them,
        // and goes on listing them for a while after it was deleted.
        const scheduleId = q.schedule;
        if (!schedules || !(await schedules.ownsRuns(tenant, scheduleId))) throw notFound('schedule');
        listIds = (_tenant, cursor, count) => schedules.listRunIds(scheduleId, cursor, count);
      }
      const batch = Math.max(q.limit * 2, 50);
      let cursor = q.cursor;
      // A filtered page reads at most this many ids, so one request stays bounded.
      let budget = 1_000;
      while (jobs.length < q.limit && budget > 0) {
        const ids = await listIds(tenant, cursor, batch);
        if (ids.length === 0) return { jobs, nextCursor: null };
        budget -= ids.length;
        const owned = await store.snapshots(tenant, ids);
        for (const [i, o] of owned.entries()) {
          cursor = ids[i];
          if (o.kind !== 'job') continue;
          const v = view(o.snapshot);
          if (q.status && v.status !== q.status) continue;
          if (q.type && v.type !== q.type) continue;
          jobs.push(v);
          if (jobs.length === q.limit) return { jobs, nextCursor: o.snapshot.id };
        }
        if (ids.length < batch) return { jobs, nextCursor: null };
      }
      return { jobs, nextCursor: cursor ?? null };
    },
  };
}

export type JobService = ReturnType<typeof createJobService>;
