import type { AnalysisContract, AnalysisName, analyses, Logger } from '@longhaul/shared';
import type { z } from 'zod';
import type { Spawn } from './spawn.ts';

/** What an analysis gets besides its input. */
export interface AnalysisContext {
  readonly jobId: string;
  /**
   * 1 on the first attempt, and one more after each attempt that failed or that its worker died in
   * (as the job view's `attempts.made` counts them); a shutdown's hand-back spends none.
   */
  readonly attempt: number;
  /**
   * 1 on the job's first start, and one more on every later start: a retry, a restart after its
   * worker died, and also one after a shutdown handed it back (which does not spend an attempt).
   */
  readonly run: number;
  /**
   * Reports progress. Cheap to call often: writes are throttled (a changed step, 100% and the
   * last call always go through), ordered, and never throw into the analysis.
   */
  progress(percent: number, step: string, message?: string): void;
  /** Saves state that {@link restored} hands back on the next attempt, so a retry resumes. */
  checkpoint(state: unknown): Promise<void>;
  /** The state last saved with {@link checkpoint} by an earlier attempt, if any. */
  readonly restored: unknown;
  /**
   * A durable step: runs `fn` once per job and stores its JSON result (at most
   * `STEP_RESULT_MAX_BYTES`); a later attempt gets the stored result back without running `fn`.
   * Names are unique per job. The body may run again if the worker dies before its result is
   * stored, so it must be idempotent; the stored result never changes once stored.
   */
  step<T>(name: string, fn: () => Promise<T> | T): Promise<T>;
  /**
   * Fan-out and fan-in: starts each child (an analysis and its input) as a job of the same tenant,
   * waits for them without holding a worker, and resolves with their results in order. The wait
   * ends this run: once they have all finished, the analysis runs again from the top (keep earlier
   * phases in `ctx.step`), and this call, finding its children, resolves instead of starting them
   * again. A child failing for good fails the job (`child_failed`, naming the child) and cancels
   * the others, unless `continueOnFailure` asks for each child's outcome instead. At most
   * `MAX_CHILDREN_PER_JOB` children per job; call spawns in the same order on every run.
   */
  spawn: Spawn;
  /** Aborted on cancel, on the attempt's timeout, and when a shutdown hands the job back. */
  readonly signal: AbortSignal;
  /** A logger bound to the job id and attempt. Never log the input: it may hold customer data. */
  readonly log: Logger;
}

export interface Analysis<C extends AnalysisContract = AnalysisContract> {
  contract: C;
  run(input: z.output<C['input']>, ctx: AnalysisContext): Promise<z.input<C['result']>>;
}

/** An implementation of the analysis named N, typed by its contract. */
export type Implementation<N extends AnalysisName> = Analysis<(typeof analyses)[N]>;

/**
 * Binds an implementation to its contract: `defineAnalysis({ ...contract, run })`. The contract
 * (name, schemas, defaults) lives in packages/shared; only `run` lives in the worker.
 */
export function defineAnalysis<N extends string, I extends z.ZodType, R extends z.ZodType>(
  definition: AnalysisContract<N, I, R> & {
    run: (input: z.output<I>, ctx: AnalysisContext) => Promise<z.input<R>>;
  },
): Analysis<AnalysisContract<N, I, R>> {
  const { run, ...contract } = definition;
  return { contract, run };
}
