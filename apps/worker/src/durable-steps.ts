import type { JobRunStore, Logger } from '@longhaul/shared';
import { MAX_STEPS_PER_JOB, withSpan } from '@longhaul/shared';
import { PermanentError } from './errors/permanent-error.ts';

/** The longest step name: it becomes part of a field name of the job hash. */
export const MAX_STEP_NAME_LENGTH = 200;

export interface DurableStepsDeps {
  store: Pick<JobRunStore, 'stepStarted' | 'stepCompleted' | 'stepFailed'>;
  jobId: string;
  /** The attempt as steps record it: every start of the job counts, a restart after a crash too. */
  attempt: number;
  /** Results earlier attempts stored (JSON text), by step name; from `store.start`. */
  stored: Map<string, string>;
  /** A step result larger than this (as JSON, in bytes) fails the job for good. */
  maxResultBytes: number;
  log: Logger;
}

/**
 * `ctx.step(name, fn)` of one attempt. A step whose result an earlier attempt stored returns that
 * result without running `fn`; any other step runs `fn`, stores its JSON result, and returns it as
 * JSON gives it back, so the first run and a replay see the same value.
 *
 * The body is at-least-once: a worker that dies after `fn` finished but before its result was
 * stored runs it again on the next attempt. The stored result is exactly-once: the first one stored
 * wins, and a zombie worker finishing the same step later gets the stored one back.
 */
export function createDurableSteps({ store, jobId, attempt, stored, maxResultBytes, log }: DurableStepsDeps) {
  const seen = new Set<string>();

  function checkName(name: string): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_STEP_NAME_LENGTH) {
      throw new PermanentError(`a step name must be 1 to ${MAX_STEP_NAME_LENGTH} characters`);
    }
    if (seen.has(name)) {
      throw new PermanentError(`the step "${name}" ran twice in one attempt; step names must be unique per job`);
    }
    seen.add(name);
  }

  function tooMany(): PermanentError {
    return new PermanentError(`the job ran more than ${MAX_STEPS_PER_JOB} steps`);
  }

  return async function step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    checkName(name);
    const earlier = stored.get(name);
    if (earlier !== undefined) {
      log.debug({ step: name }, 'step already done; its stored result is returned');
      return JSON.parse(earlier) as T;
    }

    const started = await store.stepStarted(jobId, name, attempt);
    if (started.kind === 'completed') return JSON.parse(started.result) as T;
    if (started.kind === 'too_many') throw tooMany();
    if (started.kind === 'gone') throw new Error('the job was removed while it ran');

    let value: T;
    try {
      // The step's name is the analysis' own code, never customer data: safe as an attribute.
      value = await withSpan(
        'job.step',
        { 'longhaul.job.id': jobId, 'longhaul.step.name': name, 'longhaul.job.attempt': attempt },
        async () => fn(),
      );
    } catch (err) {
      await store
        .stepFailed(jobId, name, attempt)
        .catch((e) => log.warn({ err: e, step: name }, 'step failure not recorded'));
      throw err;
    }
    const json = JSON.stringify(value) ?? 'null';
    const bytes = Buffer.byteLength(json);
    if (bytes > maxResultBytes) {
      await store.stepFailed(jobId, name, attempt).catch(() => undefined);
      throw new PermanentError(
        `the step "${name}" returned ${bytes} bytes of JSON, more than the ${maxResultBytes} allowed (STEP_RESULT_MAX_BYTES)`,
        'result_too_large',
      );
    }
    const done = await store.stepCompleted(jobId, name, attempt, json);
    if (done.kind === 'gone') throw new Error('the job was removed while it ran');
    if (done.kind === 'too_many') throw tooMany();
    // Another worker stored this step first (this one had lost the job): its result wins.
    return JSON.parse(done.kind === 'completed' ? done.result : json) as T;
  };
}
