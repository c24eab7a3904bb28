import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { analyses, type ParsedInput } from '@longhaul/shared';
import { burnCpu } from '../cpu-burn.ts';
import { type AnalysisContext, defineAnalysis } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';

/** Test hooks of `simulate`; both off by default, so production never crashes or writes files for it. */
export interface SimulateOptions {
  /**
   * Append one JSON line per execution start and finish (`{ event, jobId, attempt, pid, at }`) to
   * this file, so a fault test counts executions outside the Redis it breaks; a durable run also
   * appends one per step body it runs (`{ event: 'step', step, run, … }`). Default: none.
   */
  executionLog?: string;
  /**
   * Honour `crash: true` and `crashAtStep` by SIGKILLing this worker process mid-job. Default
   * `false`: such a job fails at once.
   */
  allowCrash?: boolean;
}

/**
 * Sleeps (or burns CPU off the event loop) through `steps` equal steps, checkpointing after each
 * one, so a retried or handed-back job resumes at the step it reached. With `durable`, each step is
 * a `ctx.step` instead, so a later attempt skips the steps an earlier one completed.
 */
export function createSimulate({ executionLog, allowCrash = false }: SimulateOptions = {}) {
  const record = (event: 'start' | 'finish', jobId: string, attempt: number, extra: object = {}) => {
    // Synchronous on purpose: the line must be on disk before a crash or a SIGKILL can intervene.
    if (executionLog) {
      appendFileSync(
        executionLog,
        `${JSON.stringify({ event, jobId, attempt, pid: process.pid, at: Date.now(), ...extra })}\n`,
      );
    }
  };
  const recordStep = (jobId: string, attempt: number, run: number, step: number) => {
    if (executionLog) {
      appendFileSync(
        executionLog,
        `${JSON.stringify({ event: 'step', jobId, attempt, run, step, pid: process.pid, at: Date.now() })}\n`,
      );
    }
  };
  return defineAnalysis({
    ...analyses.simulate,
    async run(input, ctx) {
      const started = Date.now();
      if ((input.crash || input.crashAtStep !== undefined || input.spawn?.crashAfterSpawn) && !allowCrash) {
        throw new PermanentError('crash is a test hook, refused unless the worker runs with SIMULATE_ALLOW_CRASH=true');
      }
      record('start', ctx.jobId, ctx.attempt);
      if (input.fail === 'permanent') throw new PermanentError('simulated permanent failure');
      // Fan out first; the job runs again from here once its children have finished.
      const children = input.spawn ? await fanOut(input.spawn, ctx) : undefined;
      const failTransiently = () => {
        throw new Error(`simulated transient failure on attempt ${ctx.attempt} of ${input.failTimes + 1}`);
      };
      // A durable run fails inside its last step instead, so a retry shows which steps it skips.
      if (!input.durable && ctx.attempt <= input.failTimes) failTransiently();
      const stepMs = input.durationMs / input.steps;
      const rest = async () => {
        if (stepMs <= 0) return;
        if (input.cpu) await burnCpu(stepMs, ctx.signal);
        else await sleep(stepMs, undefined, { signal: ctx.signal });
      };
      if (input.durable) {
        let firstRun: number | null = null;
        for (let step = 1; step <= input.steps; step++) {
          ctx.signal.throwIfAborted();
          await ctx.step(`step-${step}`, async () => {
            firstRun ??= step - 1;
            recordStep(ctx.jobId, ctx.attempt, ctx.run, step);
            if (step === input.crashAtStep && ctx.run === 1) {
              // Inside the step, on the job's first start only: its restart runs on.
              await sleep(stepMs / 2, undefined, { signal: ctx.signal });
              process.kill(process.pid, 'SIGKILL');
            }
            await rest();
            if (step === input.steps && ctx.attempt <= input.failTimes) failTransiently();
            return { step };
          });
          ctx.progress((step / input.steps) * 100, 'running', `step ${step} of ${input.steps}`);
        }
        record('finish', ctx.jobId, ctx.attempt);
        return {
          steps: input.steps,
          attempt: ctx.attempt,
          resumedFromStep: firstRun ?? input.steps,
          elapsedMs: Date.now() - started,
          payload: 'x'.repeat(input.resultBytes),
          ...(children ? { children } : {}),
        };
      }
      const restored = ctx.restored as { step?: number } | undefined;
      const resumedFromStep = typeof restored?.step === 'number' ? restored.step : 0;
      if (input.crash) {
        // A poison job: one step in, the process dies as a segfault or an OOM kill would, with no
        // cleanup, on every attempt (a checkpoint does not get it past this point).
        await sleep(stepMs, undefined, { signal: ctx.signal });
        process.kill(process.pid, 'SIGKILL');
      }
      for (let step = resumedFromStep; step < input.steps; step++) {
        ctx.signal.throwIfAborted();
        await rest();
        const done = step + 1;
        ctx.progress((done / input.steps) * 100, 'running', `step ${done} of ${input.steps}`);
        if (done < input.steps && stepMs >= 50) await ctx.checkpoint({ step: done });
      }
      record('finish', ctx.jobId, ctx.attempt);
      return {
        steps: input.steps,
        attempt: ctx.attempt,
        resumedFromStep,
        elapsedMs: Date.now() - started,
        payload: 'x'.repeat(input.resultBytes),
        ...(children ? { children } : {}),
      };
    },
  });
}

type SpawnInput = NonNullable<ParsedInput<'simulate'>['spawn']>;

/**
 * `spawn.count` children with the same input (but `failChild`, which fails for good), started with
 * `ctx.spawn`; answers how they ended. `crashAfterSpawn` kills the worker once they are recorded
 * and queued, before the job waits for them, on its first run: the next run must not start more.
 */
async function fanOut(spawn: SpawnInput, ctx: AnalysisContext) {
  const children = Array.from({ length: spawn.count }, (_, i) => ({
    type: 'simulate' as const,
    input: i + 1 === spawn.failChild ? { ...spawn.child, fail: 'permanent' as const } : spawn.child,
  }));
  const onSpawned =
    spawn.crashAfterSpawn && ctx.run === 1 ? () => void process.kill(process.pid, 'SIGKILL') : undefined;
  const counts = { completed: 0, failed: 0, cancelled: 0 };
  if (spawn.continueOnFailure) {
    const outcomes = await ctx.spawn(children, { continueOnFailure: true, ...(onSpawned ? { onSpawned } : {}) });
    for (const o of outcomes) counts[o.status] += 1;
  } else {
    counts.completed = (await ctx.spawn(children, onSpawned ? { onSpawned } : {})).length;
  }
  return counts;
}

/** `simulate` without test hooks; `main.ts` builds the configured one with {@link createSimulate}. */
export const simulate = createSimulate();
