import type { z } from 'zod';

/** Most durable steps (`ctx.step`) one job may run: the job's step summary is rewritten on every step. */
export const MAX_STEPS_PER_JOB = 1_000;

/** Retry policy and limits of an analysis; each can be overridden per deployment later. */
export interface AnalysisDefaults {
  /** Attempts in all, the first included. @defaultValue 3 */
  attempts: number;
  /** First retry delay; each next one doubles, with ±50% jitter. @defaultValue 2000 */
  backoffMs: number;
  /** An attempt that runs longer fails (and is retried). @defaultValue 1 hour */
  timeoutMs: number;
}

/**
 * An analysis contract: what the API needs to validate a submission and what the worker needs to
 * check its own output. Implementations live in apps/worker and are not imported here.
 */
export interface AnalysisContract<
  Name extends string = string,
  Input extends z.ZodType = z.ZodType,
  Result extends z.ZodType = z.ZodType,
> {
  /** kebab-case and stable: stored in every job, so a rename would orphan jobs in flight. */
  name: Name;
  summary: string;
  input: Input;
  result: Result;
  /** The named steps `ctx.progress` reports, in order. */
  steps: readonly string[];
  defaults: AnalysisDefaults;
}

export function defineContract<Name extends string, Input extends z.ZodType, Result extends z.ZodType>(
  contract: Omit<AnalysisContract<Name, Input, Result>, 'defaults'> & { defaults?: Partial<AnalysisDefaults> },
): AnalysisContract<Name, Input, Result> {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(contract.name)) {
    throw new Error(`analysis name "${contract.name}" must be kebab-case`);
  }
  return {
    ...contract,
    defaults: { attempts: 3, backoffMs: 2_000, timeoutMs: 3_600_000, ...contract.defaults },
  };
}
