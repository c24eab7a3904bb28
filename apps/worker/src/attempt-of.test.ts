import { describe, expect, it } from 'vitest';
import { attemptOf } from './run-job.ts';

describe("an attempt's number", () => {
  it('when runs failed or a worker died in one, then each counts; the first run is attempt 1', () => {
    expect(attemptOf({ attemptsMade: 0, stalledCounter: 0 })).toBe(1);
    expect(attemptOf({ attemptsMade: 2, stalledCounter: 0 })).toBe(3);
    // Its worker was killed in the first run: the run after it is the second attempt.
    expect(attemptOf({ attemptsMade: 0, stalledCounter: 1 })).toBe(2);
  });
});
