import { createHash } from 'node:crypto';
import {
  type AnalysisName,
  analysisNames,
  type Config,
  DEFAULT_PRIORITY,
  enqueueWebhook,
  FINAL_STATUSES,
  getContract,
  isAnalysisName,
  type JobData,
  type JobReader,
  type JobSnapshot,
  type JobView,
  jobOptionsFor,
  type Keys,
  newJobId,
  type RedisConnection,
  type WebhookDeliveryData,
} from '@longhaul/shared';
import type { Queue } from 'bullmq';
import { encodeTime } from 'ulid';
import { HttpError, notFound } from '../http/http-error.ts';
import type { BacklogQuota } from './backlog-quota.ts';
import { issuesToDetails, type ListQuery, type SubmitBody } from './schemas.ts';

export interface JobServiceDeps {
  config: Config;
  redis: RedisConnection;
  queue: Queue<JobData>;
  keys: Keys;
  reader: JobReader;
  /** The per-tenant backlog quota. Default: none. */
  quota?: BacklogQuota;
  /** The webhooks queue: a queued job removed by a cancel gets its `cancelled` delivery here. */
  webhooks?: Queue<WebhookDeliveryData>;
}

export interface Submitted {
  view: JobView;
  /** An Idempotency-Key replay of an earlier submission. */
  replay: boolean;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

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

/** The job use-cases behind the HTTP routes; each reads like the feature it serves. */
export function createJobService({ config, redis, queue, keys, reader, quota, webhooks }: JobServiceDeps) {
  const idempotencyTtl = 86_400;

  /** The job, if it exists and belongs to the tenant; 404 otherwise, 410 when retention removed it. */
  async function ownSnapshot(tenant: string, id: string): Promise<JobSnapshot> {
    const s = await reader.snapshot(id);
    if (!s.meta || s.meta.tenant !== tenant) {
      // Another tenant's job answers exactly like a missing one.
      throw notFound();
    }
    if (reader.status(s) === 'gone') {
      throw new HttpError(410, 'gone', 'this job finished and its record was removed after the retention period');
    }
    return s;
  }

  function validateInput(type: string, input: unknown): { name: AnalysisName; input: unknown } {
    if (!isAnalysisName(type)) {
      throw new HttpError(400, 'unknown_analysis', `unknown analysis type "${type}"`, {
        known: analysisNames,
      });
    }
    const parsed = getContract(type).input.safeParse(input);
    if (!parsed.success) {
      throw new HttpError(
        400,
        'validation_failed',
        `the input does not match the "${type}" schema`,
        issuesToDetails(parsed.error, 'input'),
      );
    }
    return { name: type, input: parsed.data };
  }

  async function enqueue(
    tenant: string,
    id: string,
    body: SubmitBody,
    name: AnalysisName,
    input: unknown,
  ): Promise<JobSnapshot> {
    const contract = getContract(name);
    const now = Date.now();
    const priority = body.priority ?? DEFAULT_PRIORITY;
    // Our record (tenant checks, listing, the tombstone behind 410) and the job are sent at once,
    // each in one round trip; the client hears 202 only when both are stored. If either fails the
    // catch below removes what got in, so no half-submitted job stays visible.
    const tombstoneMs = config.retention.tombstoneSeconds * 1000;
    try {
      const record = redis
        .multi()
        .hsetnx(keys.meta(id), 'tenant', tenant)
        .hsetnx(keys.meta(id), 'type', name)
        .hsetnx(keys.meta(id), 'createdAt', String(now))
        .hsetnx(keys.meta(id), 'attempts', String(contract.defaults.attempts))
        .hsetnx(keys.meta(id), 'priority', String(priority));
      if (body.webhook) record.hsetnx(keys.meta(id), 'webhookUrl', body.webhook.url);
      record
        .expire(keys.meta(id), config.retention.tombstoneSeconds)
        .zadd(keys.tenantJobs(tenant), 0, id)
        // Ids are ULIDs, so lexical order is time order: drop index entries older than any tombstone.
        .zremrangebylex(keys.tenantJobs(tenant), '-', `(job_${encodeTime(Math.max(0, now - tombstoneMs), 10)}`)
        .expire(keys.tenantJobs(tenant), config.retention.tombstoneSeconds);
      const data: JobData = { tenant, input, ...(body.webhook ? { webhook: body.webhook } : {}) };
      const [, job] = await Promise.all([
        record.exec(),
        queue.add(
          name,
          data,
          jobOptionsFor(contract, config.retention, { jobId: id, priority, delayMs: body.delayMs }),
        ),
      ]);
      // What was just stored, as a snapshot: no read back on the submit path.
      const accepted: JobSnapshot = {
        id,
        meta: {
          tenant,
          type: name,
          createdAt: now,
          attempts: contract.defaults.attempts,
          priority,
          ...(body.webhook ? { webhookUrl: body.webhook.url } : {}),
        },
        job: {
          name,
          timestamp: job.timestamp,
          processedOn: null,
          finishedOn: null,
          failedReason: null,
          attemptsMade: 0,
          progress: null,
          hasResult: false,
        },
        locked: false,
        delayed: (body.delayMs ?? 0) > 0,
        deliveries: [],
      };
      return accepted;
    } catch (err) {
      // Nothing was accepted (Redis full, down or frozen): leave no phantom behind. Best effort:
      // what stays reads as gone, is never listed, and expires. Deletes are allowed when Redis is full.
      if ((await reader.snapshot(id).catch(() => null))?.job === null) {
        await Promise.all([
          redis.multi().del(keys.meta(id)).zrem(keys.tenantJobs(tenant), id).exec(),
          quota?.release(tenant, id),
        ]).catch(() => undefined);
      }
      throw err;
    }
  }

  return {
    /** The tenant's job snapshot (404/410 like every route), for the event stream. */
    snapshot: ownSnapshot,

    async submit(tenant: string, body: SubmitBody, idempotencyKey?: string): Promise<Submitted> {
      const { name, input } = validateInput(body.type, body.input);
      if (body.webhook && !config.webhooks.secrets.has(tenant)) {
        // Unsigned deliveries could be forged by anyone who learns the URL: no secret, no webhook.
        throw new HttpError(400, 'bad_request', 'webhooks are not configured for this tenant (no signing secret)');
      }
      let id = newJobId();
      let replay = false;
      if (idempotencyKey !== undefined) {
        const bodyHash = sha256(canonical(body));
        const key = keys.idempotency(tenant, sha256(idempotencyKey));
        const claimed = await redis.set(key, JSON.stringify({ id, bodyHash }), 'EX', idempotencyTtl, 'NX');
        if (claimed !== 'OK') {
          const earlier = JSON.parse((await redis.get(key)) ?? '{}') as { id?: string; bodyHash?: string };
          if (!earlier.id) throw new HttpError(409, 'conflict', 'the Idempotency-Key expired mid-request; retry');
          if (earlier.bodyHash !== bodyHash) {
            throw new HttpError(
              409,
              'idempotency_conflict',
              'this Idempotency-Key was used with a different request body',
              { jobId: earlier.id },
            );
          }
          id = earlier.id;
          replay = true;
        }
      }
      // On a replay the add is a no-op when the first request got that far (same job id), and
      // completes the submission when it did not: retries converge on one job.
      await quota?.reserve(tenant, id);
      const accepted = await enqueue(tenant, id, body, name, input);
      // A replay reads the job as it is now; a new job is as it was just stored.
      return { view: reader.view(replay ? await reader.snapshot(id) : accepted), replay };
    },

    async get(tenant: string, id: string): Promise<JobView> {
      return reader.view(await ownSnapshot(tenant, id));
    },

    async result(tenant: string, id: string): Promise<{ view: JobView; result?: unknown }> {
      const s = await ownSnapshot(tenant, id);
      const view = reader.view(s);
      if (view.status !== 'completed') return { view };
      return { view, result: await reader.result(id) };
    },

    /**
     * A queued or delayed job is removed; an active one is flagged and its worker told to abort it
     * (the flag is also checked by workers, so a lost pub/sub message only delays the abort).
     */
    async cancel(tenant: string, id: string): Promise<JobView> {
      const s = await ownSnapshot(tenant, id);
      const status = reader.status(s);
      if ((FINAL_STATUSES as string[]).includes(status)) {
        throw new HttpError(409, 'already_finished', `the job is already ${status}`, { status });
      }
      await redis.hset(keys.meta(id), 'cancelledAt', String(Date.now()));
      let removed = false;
      if (status !== 'active') {
        // remove() refuses a locked job: one a worker took in the meantime is cancelled below.
        removed = await queue.remove(id).then(
          (n) => n === 1,
          () => false,
        );
      }
      if (removed) await quota?.release(tenant, id);
      else await redis.publish(keys.cancelChannel, id);
      // A removed job never reaches a worker, so its `cancelled` webhook is sent from here.
      if (removed && webhooks && s.meta?.webhookUrl) {
        const view = reader.view(await reader.snapshot(id));
        await enqueueWebhook(webhooks, { view, tenant, url: s.meta.webhookUrl, backoffMs: config.webhooks.backoffMs });
      }
      return reader.view(await reader.snapshot(id));
    },

    /** The tenant's jobs, newest first, filtered, a page at a time (cursor = last id seen). */
    async list(tenant: string, q: ListQuery): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
      const jobs: JobView[] = [];
      const batch = Math.max(q.limit * 2, 50);
      let cursor = q.cursor;
      // A filtered page reads at most this many ids, so one request stays bounded.
      let budget = 1_000;
      while (jobs.length < q.limit && budget > 0) {
        const ids = await redis.zrevrangebylex(
          keys.tenantJobs(tenant),
          cursor ? `(${cursor}` : '+',
          '-',
          'LIMIT',
          0,
          batch,
        );
        if (ids.length === 0) return { jobs, nextCursor: null };
        budget -= ids.length;
        const snaps = await reader.snapshots(ids);
        for (const s of snaps) {
          cursor = s.id;
          if (!s.meta || s.meta.tenant !== tenant) continue;
          const status = reader.status(s);
          if (status === 'gone') continue;
          if (q.status && status !== q.status) continue;
          if (q.type && s.meta.type !== q.type) continue;
          jobs.push(reader.view(s));
          if (jobs.length === q.limit) return { jobs, nextCursor: s.id };
        }
        if (ids.length < batch) return { jobs, nextCursor: null };
      }
      return { jobs, nextCursor: cursor ?? null };
    },
  };
}

export type JobService = ReturnType<typeof createJobService>;
