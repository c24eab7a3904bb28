/** BullMQ queue names. One Worker per queue. */
export const QUEUES = {
  /** Every analysis job; the job name is the analysis name. */
  analyses: 'analyses',
  /** Webhook deliveries; one job per (job, final event), retried for up to 24 h. */
  webhooks: 'webhooks',
} as const;

export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/**
 * Redis keys longhaul keeps beside BullMQ's own. All start with the queue prefix, which defaults
 * to the hash tag `{longhaul}`, so every key lands in one Redis Cluster slot with the queues'.
 */
export function keysFor(prefix: string) {
  return {
    /** Hash: tenant, type, createdAt, cancelledAt. Outlives the job as its tombstone (410). */
    meta: (jobId: string) => `${prefix}:lh:meta:${jobId}`,
    /** Sorted set of a tenant's job ids, scored by creation time. */
    tenantJobs: (tenant: string) => `${prefix}:lh:tenant:${tenant}:jobs`,
    /** String: `{ id, hash }` of the request that first used an Idempotency-Key. */
    idempotency: (tenant: string, keyHash: string) => `${prefix}:lh:idem:${tenant}:${keyHash}`,
    /** String: the JSON checkpoint a job saved, read back on its next attempt. */
    checkpoint: (jobId: string) => `${prefix}:lh:ckpt:${jobId}`,
    /** Pub/sub channel on which the API asks workers to abort an active job. */
    cancelChannel: `${prefix}:lh:cancel`,
    /** BullMQ's lock key for an active job (exists while a worker holds the job). */
    lock: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}:lock`,
    /** BullMQ's job hash. */
    job: (queue: QueueName, jobId: string) => `${prefix}:${queue}:${jobId}`,
    /** BullMQ's delayed set (scheduled jobs and retries waiting for their backoff). */
    delayed: (queue: QueueName) => `${prefix}:${queue}:delayed`,
    /** BullMQ's events stream of a queue (read by QueueEvents; XRANGE for Last-Event-ID replays). */
    events: (queue: QueueName) => `${prefix}:${queue}:events`,
    /** List, newest first and capped: a job's webhook delivery attempts, shown on its view. */
    webhookDeliveries: (jobId: string) => `${prefix}:lh:webhook:${jobId}`,
  };
}

export type Keys = ReturnType<typeof keysFor>;
