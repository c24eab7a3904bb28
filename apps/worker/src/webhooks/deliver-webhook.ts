import {
  type Config,
  type DeliveryRecord,
  decodeFailure,
  EVENT_ID_HEADER,
  FINAL_STATUSES,
  type JobReads,
  type Logger,
  type RedisConnection,
  recordDelivery,
  SIGNATURE_HEADER,
  signWebhook,
  toJobView,
  type WebhookDeliveryData,
  type WebhookEvent,
  webhookEventId,
  withJobSpan,
} from '@longhaul/shared';
import { type Job, type JobsOptions, UnrecoverableError } from 'bullmq';
import { type Dispatcher, fetch } from 'undici';
import { assertFetchableUrl, ForbiddenAddressError } from '../net/public-address.ts';

export interface DeliverWebhookDeps {
  config: Config;
  log: Logger;
  redis: RedisConnection;
  /** Reads of the job the delivery reports on. */
  reads: JobReads;
  /** The SSRF-guarded dispatcher (createGuardedDispatcher): refuses private targets after DNS. */
  dispatcher: Dispatcher;
}

/** The guard's refusal, wherever undici wrapped it (fetch failed → cause → …). */
function forbiddenCause(err: unknown): ForbiddenAddressError | null {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ForbiddenAddressError) return e;
  }
  return null;
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const base = err instanceof Error ? err.message : String(err);
  return cause?.code || cause?.message ? `${base} (${cause.code ?? cause.message})` : base;
}

/**
 * How long BullMQ waits before the retry after attempt `attempt`, from the delivery's own backoff:
 * the API set it when the job was submitted (WEBHOOK_BACKOFF_MS is the API's setting), so this
 * worker's setting may differ. Exponential: the n-th retry waits delay · 2^(n-1).
 */
export function retryDelayMs(backoff: JobsOptions['backoff'], attempt: number): number {
  if (backoff === undefined) return 0;
  if (typeof backoff === 'number') return backoff;
  const delay = backoff.delay ?? 0;
  return backoff.type === 'exponential' ? delay * 2 ** (attempt - 1) : delay;
}

/**
 * The webhooks queue's processor: one POST of the job view, signed Stripe-style with the tenant's
 * secret. A non-2xx answer or a network error throws (BullMQ retries with exponential backoff for
 * up to 24 h); a refused address or a missing secret fails at once. Every attempt is recorded on
 * the job view.
 */
export function createDeliveryProcessor({ config, log, redis, reads, dispatcher }: DeliverWebhookDeps) {
  const { allowPrivate, timeoutMs, secrets } = config.webhooks;

  /**
   * The event to send, from the job as it ended. Retention may already have removed a job kept by
   * count (a `COMPLETED_RETENTION_COUNT` of 1): then the body is what BullMQ kept on this parent.
   */
  async function compose(job: Job<WebhookDeliveryData>): Promise<NonNullable<WebhookDeliveryData['sent']>> {
    const { jobId, tenant, type } = job.data;
    const owned = await reads.snapshot(tenant, jobId);
    let body: Record<string, unknown>;
    if (
      owned.kind === 'job' &&
      (FINAL_STATUSES as string[]).includes(toJobView(owned.snapshot, config.retention).status)
    ) {
      const { webhook: _deliveries, ...view } = toJobView(owned.snapshot, config.retention);
      body = view;
    } else {
      const failures = Object.values(await job.getIgnoredChildrenFailures());
      const error = failures[0] === undefined ? null : decodeFailure(String(failures[0]));
      const status = error === null ? 'completed' : error.code === 'cancelled' ? 'cancelled' : 'failed';
      const base = `/v1/jobs/${jobId}`;
      body = {
        id: jobId,
        type,
        status,
        error,
        links: { self: base, result: `${base}/result`, events: `${base}/events` },
      };
    }
    const event = body.status as WebhookEvent;
    return { event, eventId: webhookEventId(jobId, event), body: JSON.stringify(body) };
  }

  /**
   * Each delivery attempt is a span in the trace of the request that submitted the job (the
   * delivery job carries its context too); undici's instrumentation adds the POST under it.
   */
  return function deliverWebhook(job: Job<WebhookDeliveryData>): Promise<{ status: number }> {
    const attributes = {
      'longhaul.job.id': job.data.jobId,
      'longhaul.job.type': job.data.type,
      'longhaul.webhook.attempt': job.attemptsMade + 1,
    };
    return withJobSpan(job, 'webhook.deliver', attributes, async (span) => {
      const delivered = await deliverOnce(job);
      span.setAttribute('http.response.status_code', delivered.status);
      return delivered;
    });
  };

  async function deliverOnce(job: Job<WebhookDeliveryData>): Promise<{ status: number }> {
    if (!job.data.sent) {
      // Stored before the first attempt, so every retry sends (and signs) the same bytes.
      await job.updateData({ ...job.data, sent: await compose(job) });
    }
    const { jobId, tenant, url } = job.data;
    const { event, eventId, body } = job.data.sent as NonNullable<WebhookDeliveryData['sent']>;
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const started = Date.now();
    const deliveryLog = log.child({ jobId, event, attempt, host: URL.canParse(url) ? new URL(url).host : '?' });

    async function record(outcome: { ok: boolean; status: number | null; error: string | null }, final: boolean) {
      const last = final || outcome.ok || attempt >= maxAttempts;
      const entry: DeliveryRecord = {
        event,
        attempt,
        at: new Date(started).toISOString(),
        ...outcome,
        durationMs: Date.now() - started,
        nextAttemptAt: last ? null : new Date(Date.now() + retryDelayMs(job.opts.backoff, attempt)).toISOString(),
      };
      await recordDelivery(redis, reads.layout, jobId, entry, config.retention.tombstoneSeconds).catch((err) =>
        deliveryLog.warn({ err }, 'could not record the webhook attempt'),
      );
    }

    const secret = secrets.get(tenant);
    if (!secret) {
      const error = 'no webhook signing secret is configured for this tenant';
      await record({ ok: false, status: null, error }, true);
      throw new UnrecoverableError(error);
    }

    let status: number;
    try {
      assertFetchableUrl(url, allowPrivate, 'WEBHOOK_ALLOW_PRIVATE');
      const res = await fetch(url, {
        method: 'POST',
        body,
        dispatcher,
        // A redirect could lead anywhere (and past a per-hop check, to a different host): not followed.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'longhaul-webhooks/1',
          [SIGNATURE_HEADER]: signWebhook(secret, body),
          [EVENT_ID_HEADER]: eventId,
          'Longhaul-Event': event,
          'Longhaul-Delivery-Attempt': String(attempt),
        },
      });
      status = res.status;
      await res.body?.cancel().catch(() => undefined);
    } catch (err) {
      const refused = forbiddenCause(err);
      if (refused) {
        await record({ ok: false, status: null, error: refused.message }, true);
        deliveryLog.warn({ range: refused.range }, 'webhook target refused (not a public address)');
        // Where the URL led stays here: the tenant's record names only the rule.
        deliveryLog.debug({ address: refused.address }, 'webhook target resolved to');
        throw new UnrecoverableError(refused.message);
      }
      const error = describe(err);
      await record({ ok: false, status: null, error }, false);
      deliveryLog.info({ err: error }, 'webhook delivery failed; it will be retried');
      throw new Error(`webhook delivery failed: ${error}`);
    }

    if (status >= 200 && status < 300) {
      await record({ ok: true, status, error: null }, true);
      deliveryLog.info({ status, ms: Date.now() - started }, 'webhook delivered');
      return { status };
    }
    const error = `the receiver answered ${status}`;
    await record({ ok: false, status, error }, false);
    deliveryLog.info({ status }, 'webhook refused by the receiver; it will be retried');
    throw new Error(error);
  }
}
