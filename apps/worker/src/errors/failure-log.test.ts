import { describe, expect, it } from 'vitest';
import { DatasetError } from '../analyses/dataset-profile/dataset-error.ts';
import { failureForLog } from './failure-log.ts';
import { PermanentError } from './permanent-error.ts';

const DATA = '123-45-6789';

describe('what the worker logs of a failure', () => {
  it('when a failure raised on purpose quotes the job’s data, then the log keeps its code and class, not a word of it', () => {
    const err = new PermanentError(`unknown column(s) "nope"; the dataset has "${DATA}"`, 'invalid_input');
    const logged = failureForLog(err);
    expect(logged).toEqual({ code: 'invalid_input', error: 'PermanentError' });
    expect(JSON.stringify(logged)).not.toContain(DATA);
    expect(JSON.stringify(failureForLog(new DatasetError(`bad row: ${DATA}`)))).not.toContain(DATA);
  });

  it('when an unexpected error carries data in its message, then the log keeps where it was thrown, not the message', () => {
    const err = new TypeError(`cannot read "${DATA}"`);
    const logged = failureForLog(err);
    expect(logged.code).toBe('analysis_failed');
    expect(logged.error).toBe('TypeError');
    expect(logged.at).toMatch(/failure-log\.test\.ts/);
    expect(JSON.stringify(logged)).not.toContain(DATA);
  });

  it('when BullMQ fails a job with its stored reason, then the code is read from it', () => {
    expect(failureForLog(new Error(`child_failed: child job_1 failed: ${DATA}`)).code).toBe('child_failed');
    expect(JSON.stringify(failureForLog(new Error(`child_failed: ${DATA}`)))).not.toContain(DATA);
  });

  it('when what was thrown is not an Error, then only its type is logged', () => {
    expect(failureForLog(DATA)).toEqual({ code: 'analysis_failed', error: 'string' });
  });
});
