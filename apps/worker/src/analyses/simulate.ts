import { setTimeout as sleep } from 'node:timers/promises';
import { analyses } from '@longhaul/shared';
import { burnCpu } from '../cpu-burn.ts';
import { defineAnalysis } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';

/**
 * Sleeps (or burns CPU off the event loop) through `steps` equal steps, checkpointing after each
 * one, so a retried or handed-back job resumes at the step it reached.
 */
export const simulate = defineAnalysis({
  ...analyses.simulate,
  async run(input, ctx) {
    const started = Date.now();
    if (input.fail === 'permanent') throw new PermanentError('simulated permanent failure');
    if (ctx.attempt <= input.failTimes) {
      throw new Error(`simulated transient failure on attempt ${ctx.attempt} of ${input.failTimes + 1}`);
    }
    const restored = ctx.restored as { step?: number } | undefined;
    const resumedFromStep = typeof restored?.step === 'number' ? restored.step : 0;
    const stepMs = input.durationMs / input.steps;
    for (let step = resumedFromStep; step < input.steps; step++) {
      ctx.signal.throwIfAborted();
      if (stepMs > 0) {
        if (input.cpu) await burnCpu(stepMs, ctx.signal);
        else await sleep(stepMs, undefined, { signal: ctx.signal });
      }
      const done = step + 1;
      ctx.progress((done / input.steps) * 100, 'running', `step ${done} of ${input.steps}`);
      if (done < input.steps && stepMs >= 50) await ctx.checkpoint({ step: done });
    }
    return {
      steps: input.steps,
      attempt: ctx.attempt,
      resumedFromStep,
      elapsedMs: Date.now() - started,
      payload: 'x'.repeat(input.resultBytes),
    };
  },
});
