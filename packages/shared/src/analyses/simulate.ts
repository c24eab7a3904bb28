import { z } from 'zod';
import { defineContract, MAX_STEPS_PER_JOB } from '../analysis.ts';

/** Upper bound on `resultBytes`, kept under the default result cap (16 MiB). */
export const SIMULATE_MAX_RESULT_BYTES = 8 * 1024 * 1024;

/** Most children one `simulate` job may spawn (`MAX_CHILDREN_PER_JOB` may allow fewer). */
export const SIMULATE_MAX_CHILDREN = 1_000;

const simulateFields = {
  durationMs: z.number().int().min(0).max(3_600_000).describe('Total run time of one attempt.'),
  steps: z.number().int().min(1).max(10_000).default(10).describe('Progress steps to report.'),
  failTimes: z
    .number()
    .int()
    .min(0)
    .max(100)
    .default(0)
    .describe('Throw a transient (retried) error on this many first attempts (with durable: inside the last step).'),
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
};

type SimulateFields = z.output<z.ZodObject<typeof simulateFields>>;

function refineSimulate(input: SimulateFields, ctx: z.RefinementCtx): void {
  if (input.durable && input.steps > MAX_STEPS_PER_JOB) {
    ctx.addIssue({ code: 'custom', path: ['steps'], message: `at most ${MAX_STEPS_PER_JOB} with durable` });
  }
  if (input.crashAtStep !== undefined && !input.durable) {
    ctx.addIssue({ code: 'custom', path: ['crashAtStep'], message: 'needs durable: true' });
  }
  if (input.crashAtStep !== undefined && input.crashAtStep > input.steps) {
    ctx.addIssue({ code: 'custom', path: ['crashAtStep'], message: 'must not exceed steps' });
  }
}

/** The input of one child of a fanning-out `simulate`: a `simulate` input without `spawn`. */
const simulateChildInput = z.object(simulateFields).strict().superRefine(refineSimulate);

/**
 * A synthetic analysis for smoke tests, demos and benchmarks. Registered in every environment,
 * with bounds, so any deployment can be exercised through its real API.
 */
export const simulate = defineContract({
  name: 'simulate',
  summary:
    'Sleeps or burns CPU through a number of steps, fails on request, returns a sized result; optionally fans out to child jobs first.',
  input: z
    .object({
      ...simulateFields,
      spawn: z
        .object({
          count: z.number().int().min(1).max(SIMULATE_MAX_CHILDREN).describe('Child jobs to start (ctx.spawn).'),
          child: simulateChildInput.describe('The input of each child: a simulate input without spawn.'),
          failChild: z
            .number()
            .int()
            .min(1)
            .max(SIMULATE_MAX_CHILDREN)
            .optional()
            .describe('This child (1-based) gets fail: "permanent", so it fails for good.'),
          continueOnFailure: z
            .boolean()
            .default(false)
            .describe('Complete with partial results when children fail, instead of failing with child_failed.'),
          crashAfterSpawn: z
            .boolean()
            .default(false)
            .describe(
              'Test hook: kill the worker process right after the children are started, before the job waits for them, on its first run only. Refused (failed, no retry) unless the worker runs with SIMULATE_ALLOW_CRASH=true.',
            ),
        })
        .strict()
        .optional()
        .describe(
          'Fan out first: start count child simulate jobs, wait for them without holding a worker, then run its own steps.',
        ),
    })
    .strict()
    .superRefine((input, ctx) => {
      refineSimulate(input, ctx);
      if (input.spawn?.failChild !== undefined && input.spawn.failChild > input.spawn.count) {
        ctx.addIssue({ code: 'custom', path: ['spawn', 'failChild'], message: 'must not exceed count' });
      }
    }),
  result: z.object({
    steps: z.number().int(),
    attempt: z.number().int(),
    resumedFromStep: z.number().int(),
    elapsedMs: z.number(),
    payload: z.string(),
    /** With spawn: how its children ended. */
    children: z
      .object({ completed: z.number().int(), failed: z.number().int(), cancelled: z.number().int() })
      .optional(),
  }),
  steps: ['running'],
  defaults: { attempts: 3, backoffMs: 500, timeoutMs: 3_660_000 },
});
