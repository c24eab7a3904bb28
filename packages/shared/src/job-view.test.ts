import { describe, expect, it } from 'vitest';
import { decodeFailure, encodeFailure } from './errors.ts';
import { type JobFields, type JobSnapshot, parseStepRecords, statusOf, toJobView } from './job-view.ts';

const retention = {
  completedSeconds: 86_400,
  completedCount: 10,
  failedSeconds: 604_800,
  failedCount: 10,
  tombstoneSeconds: 2_592_000,
};
const fields = (over: Partial<JobFields> = {}): JobFields => ({
  name: 'simulate',
  timestamp: 1_000,
  processedOn: null,
  finishedOn: null,
  failedReason: null,
  attemptsMade: 0,
  attemptsMax: 3,
  priority: 500,
  progress: null,
  stalledCount: 0,
  cancelledAt: null,
  webhookUrl: null,
  hasResult: false,
  ...over,
});
const snap = (over: Partial<JobSnapshot> = {}): JobSnapshot => ({
  id: 'job_01J0000000000000000000000A',
  job: fields(),
  locked: false,
  delayed: false,
  ...over,
});

describe('statusOf', () => {
  it('when the job is waiting, then it is queued', () => expect(statusOf(snap())).toBe('queued'));
  it('when a worker holds its lock, then it is active', () => expect(statusOf(snap({ locked: true }))).toBe('active'));
  it('when it sits in the delayed set, then it is delayed', () =>
    expect(statusOf(snap({ delayed: true }))).toBe('delayed'));
  it('when it finished with a result, then it is completed', () =>
    expect(statusOf(snap({ job: fields({ finishedOn: 5, hasResult: true }) }))).toBe('completed'));
  it('when it finished without a result, then it failed', () =>
    expect(statusOf(snap({ job: fields({ finishedOn: 5, failedReason: 'boom' }) }))).toBe('failed'));
  it('when it failed after a cancel, then it is cancelled', () =>
    expect(statusOf(snap({ job: fields({ finishedOn: 5, failedReason: 'cancelled: by request' }) }))).toBe(
      'cancelled',
    ));
  it('when a waiting job was flagged cancelled, then it is cancelled before a worker drains it', () =>
    expect(statusOf(snap({ job: fields({ cancelledAt: 9 }) }))).toBe('cancelled'));
  it('when an active job was flagged cancelled, then it stays active until its worker stops it', () =>
    expect(statusOf(snap({ locked: true, job: fields({ cancelledAt: 9 }) }))).toBe('active'));
});

describe('toJobView', () => {
  it('when active with progress, then the view has an ETA and counts the running attempt', () => {
    const view = toJobView(
      snap({
        locked: true,
        job: fields({ processedOn: 10_000, attemptsMade: 1, progress: { percent: 25, step: 'x' } }),
      }),
      retention,
      20_000,
    );
    expect(view.status).toBe('active');
    expect(view.attempts).toEqual({ made: 2, max: 3 });
    expect(view.etaSeconds).toBe(30);
    expect(view.links.result).toBe(`/v1/jobs/${view.id}/result`);
  });

  it('when its worker died in a run and another completed it, then both runs count as attempts', () => {
    const view = toJobView(
      snap({
        job: fields({ processedOn: 9_000, finishedOn: 10_000, hasResult: true, attemptsMade: 1, stalledCount: 1 }),
      }),
      retention,
    );
    expect(view.attempts).toEqual({ made: 2, max: 3 });
    // Never more than allowed: a poison job fails once its stalls pass the limit.
    const poison = toJobView(
      snap({ job: fields({ finishedOn: 10_000, failedReason: 'stalled: x', attemptsMade: 1, stalledCount: 3 }) }),
      retention,
    );
    expect(poison.attempts).toEqual({ made: 3, max: 3 });
  });

  it('when a job never taken is cancelled and drained, then it never started; one that ran before and was drained did', () => {
    const cancelled = encodeFailure('cancelled', 'cancelled by request');
    const drained = { cancelledAt: 5_000, processedOn: 6_000, finishedOn: 6_000, failedReason: cancelled };
    const never = toJobView(snap({ job: fields({ ...drained, timesTaken: 1 }) }), retention);
    expect(never).toMatchObject({ status: 'cancelled', startedAt: null, attempts: { made: 0, max: 3 } });
    // Failed twice, cancelled in its retry's backoff, then drained.
    const retried = toJobView(snap({ job: fields({ ...drained, timesTaken: 3, attemptsMade: 2 }) }), retention);
    expect(retried).toMatchObject({ status: 'cancelled', attempts: { made: 2, max: 3 } });
    expect(retried.startedAt).not.toBeNull();
    // Its worker killed, cancelled while stalled, then drained.
    const lost = toJobView(snap({ job: fields({ ...drained, timesTaken: 2, stalledCount: 1 }) }), retention);
    expect(lost).toMatchObject({ status: 'cancelled', attempts: { made: 1, max: 3 } });
    expect(lost.startedAt).not.toBeNull();
    // Handed back by a shutdown (no attempt spent), then cancelled and drained.
    const handedBack = toJobView(snap({ job: fields({ ...drained, timesTaken: 2 }) }), retention);
    expect(handedBack.startedAt).not.toBeNull();
    expect(handedBack.attempts.made).toBe(0);
  });

  it('when a worker took a job only to park it at the fair-share gate, then it reads why it waits and that it never started', () => {
    // BullMQ stamped processedOn as it took the job; the park took the take back from its count.
    const parked = toJobView(
      snap({ parked: 'tenant_concurrency', job: fields({ processedOn: 5_000, timesTaken: 0 }) }),
      retention,
    );
    expect(parked).toMatchObject({ status: 'queued', waiting: 'tenant_concurrency', startedAt: null });
    // One whose worker died mid-run still says so.
    const lost = toJobView(snap({ job: fields({ processedOn: 5_000, timesTaken: 1 }) }), retention);
    expect(lost).toMatchObject({ status: 'queued', waiting: 'worker_lost' });
    expect(lost.startedAt).not.toBeNull();
  });

  it('when completed, then it expires after the completed retention', () => {
    const view = toJobView(snap({ job: fields({ finishedOn: 5_000, hasResult: true, attemptsMade: 1 }) }), retention);
    expect(view.expiresAt).toBe(new Date(5_000 + 86_400_000).toISOString());
    expect(view.progress?.percent).toBe(100);
    expect(view.error).toBeNull();
  });

  it('when failed, then the error code and message are split from the stored reason', () => {
    const view = toJobView(
      snap({ job: fields({ finishedOn: 5_000, failedReason: 'invalid_input: durationMs: too big' }) }),
      retention,
    );
    expect(view.error).toEqual({ code: 'invalid_input', message: 'durationMs: too big' });
  });
});

describe('decodeFailure', () => {
  it('when a reason has no known code, then it is an analysis failure with the whole message', () =>
    expect(decodeFailure('socket hang up')).toEqual({ code: 'analysis_failed', message: 'socket hang up' }));
  it('when a failure is encoded, then decoding gives back its code and message', () => {
    for (const code of ['cancelled', 'timeout', 'result_too_large', 'invalid_input'] as const) {
      expect(decodeFailure(encodeFailure(code, 'why: it broke'))).toEqual({ code, message: 'why: it broke' });
    }
  });
  it('when BullMQ gave up a stalled job, then the code is stalled', () =>
    expect(decodeFailure('job stalled more than allowable limit').code).toBe('stalled'));
  it('when a worker died and the job waits for another, then its stale progress is hidden and it says why', () => {
    const view = toJobView(
      snap({ job: fields({ processedOn: 10, stalledCount: 1, progress: { percent: 40, step: 'x' } }) }),
      retention,
    );
    expect(view.status).toBe('queued');
    expect(view.progress).toBeNull();
    expect(view.waiting).toBe('worker_lost');
  });
  it('when a worker died and the stalled check has not yet run, then the job already reads as waiting for another worker', () => {
    // Still in BullMQ's active list, but no lock and no stall counted yet.
    const view = toJobView(
      snap({ job: fields({ processedOn: 10, stalledCount: 0, progress: { percent: 40, step: 'x' } }) }),
      retention,
    );
    expect(view).toMatchObject({ status: 'queued', progress: null, waiting: 'worker_lost' });
  });
});

describe('durable steps in the job view', () => {
  it('when a job ran no steps, then its view has no steps field', () => {
    expect(toJobView(snap(), retention)).not.toHaveProperty('steps');
  });

  it('when a job ran steps, then its view lists them with ISO times, a running one unfinished', () => {
    const steps = parseStepRecords(
      JSON.stringify([
        { name: 'fetch', status: 'completed', attempt: 1, startedAt: 1_000, finishedAt: 2_000 },
        { name: 'merge', status: 'running', attempt: 2, startedAt: 3_000 },
      ]),
    );
    expect(toJobView(snap({ locked: true, job: fields({ steps }) }), retention).steps).toEqual([
      {
        name: 'fetch',
        status: 'completed',
        attempt: 1,
        startedAt: '1970-01-01T00:00:01.000Z',
        finishedAt: '1970-01-01T00:00:02.000Z',
      },
      { name: 'merge', status: 'running', attempt: 2, startedAt: '1970-01-01T00:00:03.000Z', finishedAt: null },
    ]);
  });

  it('when the stored summary is not an array of steps, then the status read ignores it rather than failing', () => {
    expect(parseStepRecords('{}')).toBeUndefined();
    expect(parseStepRecords('not json')).toBeUndefined();
    expect(parseStepRecords(JSON.stringify([{ name: 'x', status: 'weird', attempt: 1, startedAt: 1 }]))).toEqual([]);
  });
});

describe('children (ctx.spawn) in the job view', () => {
  const counts = { total: 4, queued: 1, active: 1, completed: 1, failed: 0, cancelled: 1 };
  const parent = (over: Partial<JobSnapshot> = {}) =>
    snap({
      job: fields({ processedOn: 2_000, progress: { percent: 5, step: 'running' } }),
      children: { counts, percent: 62.5, waiting: true },
      ...over,
    });

  it('when a parent waits for its children, then it reads active, with their counts and progress together', () => {
    const view = toJobView(parent(), retention, 10_000);
    expect(view.status).toBe('active');
    expect(view.children).toEqual(counts);
    expect(view.progress).toEqual({ percent: 62.5, step: 'children', message: '2 of 4 children finished' });
    expect(view.waiting).toBeUndefined();
  });

  it('when its last child released it and no worker has taken it yet, then it is queued, not a lost worker', () => {
    const view = toJobView(parent({ children: { counts, percent: 100, waiting: false } }), retention, 10_000);
    expect(view.status).toBe('queued');
    expect(view.waiting).toBe('queue');
    expect(view.progress?.step).toBe('children');
  });

  it('when a waiting parent is cancelled, then it reads cancelled at once', () => {
    const view = toJobView(parent({ job: fields({ processedOn: 2_000, cancelledAt: 3_000 }) }), retention, 10_000);
    expect(view.status).toBe('cancelled');
  });

  it('when a job is a child, then its view names its parent; a job without children has no children field', () => {
    const view = toJobView(snap({ job: fields({ parentId: 'job_01J0000000000000000000000B' }) }), retention);
    expect(view.parentId).toBe('job_01J0000000000000000000000B');
    expect(view.children).toBeUndefined();
    expect(decodeFailure(encodeFailure('child_failed', 'child job_X failed')).code).toBe('child_failed');
  });
});
