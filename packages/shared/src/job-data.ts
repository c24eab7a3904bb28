import type { JobsOptions } from 'bullmq';
import type { AnalysisContract } from './analysis.ts';
import type { Config } from './config.ts';

/** What the API stores in a BullMQ job. The job's name is the analysis name. */
export interface JobData {
  tenant: string;
  input: unknown;
  webhook?: { url: string };
}

/**
 * Priorities as clients give them: 1 (most urgent) to 1000, 500 when not given. Every job carries a
 * BullMQ priority, so jobs with and without one are ordered together (BullMQ serves un-prioritised
 * jobs before all prioritised ones otherwise).
 */
export const DEFAULT_PRIORITY = 500;

export interface SubmitOptions {
  jobId: string;
  priority?: number | undefined;
  delayMs?: number | undefined;
}

/** BullMQ options for a new job: retries with jittered exponential backoff, bounded retention. */
export function jobOptionsFor(
  contract: AnalysisContract,
  retention: Config['retention'],
  { jobId, priority, delayMs }: SubmitOptions,
): JobsOptions {
  return {
    jobId,
    priority: priority ?? DEFAULT_PRIORITY,
    delay: delayMs ?? 0,
    attempts: contract.defaults.attempts,
    backoff: { type: 'exponential', delay: contract.defaults.backoffMs, jitter: 0.5 },
    removeOnComplete: { age: retention.completedSeconds, count: retention.completedCount },
    removeOnFail: { age: retention.failedSeconds, count: retention.failedCount },
  };
}
