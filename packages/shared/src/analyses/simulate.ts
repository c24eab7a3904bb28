import { z } from 'zod';
import { defineContract, MAX_STEPS_PER_JOB } from '../analysis.ts';

/** Upper bound on `resultBytes`, kept under the default result cap (16 MiB). */
export const SIMULATE_MAX_RESULT_BYTES = 8 * 1024 * 1024;

/**
 * A synthetic analysis for smoke tests, demos and benchmarks. Registered in every environment,
 * with bounds, so any deployment can be exercised through its real API.
 */
export const simulate = defineContract({
  name: 'simulate',
  summary: 'Sleeps or burns CPU through a number of steps, fails on request, returns a sized result.',
  input: z
    .object({
      durationMs: z.number().int().min(0).max(3_600_000).describe('Total run time of one attempt.'),
      steps: z.number().int().min(1).max(10_000).default(10).describe('Progress steps to report.'),
      failTimes: z
        .number()
        .int()
        .min(0)
        .max(100)
        .default(0)
        .describe(
          'Throw a transient (retried) error on this many first attempts (with durable: inside the last step).',
        ),
      fail: z.literal('permanent').optional().describe('Throw a permanent error: fails at once, no retry.'),
      cpu: z.boolean().default(false).describe('Burn CPU (in a worker thread) instead of sleeping.'),
      crash: z
        .boolean()
        .default(false)
        .describe(
          'Test hook: kill the worker process mid-job. Refused (failed, no retry) unless the worker runs with SIMULATE_ALLOW_CRASH=true.',
        ),
      resultBytes: z
        .number()
        .int()
        .min(0)
        .max(SIMULATE_MAX_RESULT_BYTES)
        .default(0)
        .describe('Approximate size of the result payload.'),
      durable: z
        .boolean()
        .default(false)
        .describe(
          `Run each step as a durable step (ctx.step): a later attempt skips the steps an earlier one completed. At most ${MAX_STEPS_PER_JOB} steps.`,
        ),
      crashAtStep: z
        .number()
        .int()
        .min(1)
        .max(MAX_STEPS_PER_JOB)
        .optional()
        .describe(
          'Test hook, with durable: kill the worker process inside this step (1-based), on the first attempt only. Refused (failed, no retry) unless the worker runs with SIMULATE_ALLOW_CRASH=true.',
        ),
    })
    .strict()
    .superRefine((input, ctx) => {
      if (input.durable && input.steps > MAX_STEPS_PER_JOB) {
        ctx.addIssue({ code: 'custom', path: ['steps'], message: `at most ${MAX_STEPS_PER_JOB} with durable` });
      }
      if (input.crashAtStep !== undefined && !input.durable) {
        ctx.addIssue({ code: 'custom', path: ['crashAtStep'], message: 'needs durable: true' });
      }
      if (input.crashAtStep !== undefined && input.crashAtStep > input.steps) {
        ctx.addIssue({ code: 'custom', path: ['crashAtStep'], message: 'must not exceed steps' });
      }
    }),
  result: z.object({
    steps: z.number().int(),
    attempt: z.number().int(),
    resumedFromStep: z.number().int(),
    elapsedMs: z.number(),
    payload: z.string(),
  }),
  steps: ['running'],
  defaults: { attempts: 3, backoffMs: 500, timeoutMs: 3_660_000 },
});
