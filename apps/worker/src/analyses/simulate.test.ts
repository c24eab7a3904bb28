import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import type { AnalysisContext } from '../define-analysis.ts';
import { PermanentError } from '../errors/permanent-error.ts';
import { createSimulate, simulate } from './simulate.ts';

function fakeContext(over: Partial<AnalysisContext> = {}, stored = new Map<string, unknown>()) {
  const progress: { percent: number; step: string; message?: string }[] = [];
  const checkpoints: unknown[] = [];
  const ctx: AnalysisContext = {
    jobId: 'job_test',
    attempt: 1,
    run: 1,
    step: async (name, fn) => {
      if (!stored.has(name)) stored.set(name, await fn());
      return stored.get(name) as never;
    },
    progress: (percent, step, message) => progress.push({ percent, step, message }),
    checkpoint: async (state) => {
      checkpoints.push(state);
    },
    restored: undefined,
    spawn: () => Promise.reject(new Error('no fan-out in this test')),
    signal: new AbortController().signal,
    log: createLogger({ name: 'test', level: 'silent', pretty: false }),
    ...over,
  };
  return { ctx, progress, checkpoints };
}

const input = (over: object = {}) => simulate.contract.input.parse({ durationMs: 100, steps: 4, ...over });

describe('simulate', () => {
  it('when run, then it reports a step per step and returns a result of the asked size', async () => {
    const { ctx, progress, checkpoints } = fakeContext();
    const result = await simulate.run(input({ durationMs: 400, resultBytes: 1000 }), ctx);
    expect(progress.map((p) => p.percent)).toEqual([25, 50, 75, 100]);
    expect(checkpoints).toEqual([{ step: 1 }, { step: 2 }, { step: 3 }]);
    expect(result.payload).toHaveLength(1000);
    expect(simulate.contract.result.safeParse(result).success).toBe(true);
  });

  it('when told to fail its first attempts, then it throws a transient error on those only', async () => {
    await expect(simulate.run(input({ failTimes: 2 }), fakeContext({ attempt: 2 }).ctx)).rejects.toThrow(/transient/);
    await expect(simulate.run(input({ failTimes: 2 }), fakeContext({ attempt: 3 }).ctx)).resolves.toMatchObject({
      attempt: 3,
    });
  });

  it('when told to fail permanently, then it throws a PermanentError', async () => {
    await expect(simulate.run(input({ fail: 'permanent' }), fakeContext().ctx)).rejects.toBeInstanceOf(PermanentError);
  });

  it('when a checkpoint was restored, then it resumes at the saved step', async () => {
    const { ctx, progress } = fakeContext({ restored: { step: 3 } });
    const result = await simulate.run(input(), ctx);
    expect(result.resumedFromStep).toBe(3);
    expect(progress).toHaveLength(1);
  });

  it('when the signal aborts, then it stops between steps', async () => {
    const controller = new AbortController();
    const { ctx } = fakeContext({ signal: controller.signal });
    const run = simulate.run(input({ durationMs: 10_000, steps: 10 }), ctx);
    controller.abort('cancel');
    await expect(run).rejects.toThrow(/abort/i);
  });

  it('when burning CPU, then the event loop stays free while it runs', async () => {
    const { ctx } = fakeContext();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    await simulate.run(input({ durationMs: 300, steps: 1, cpu: true }), ctx);
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(5);
  });
});

describe('durable simulate', () => {
  it('when durable, then each step is a ctx.step and a later attempt skips the stored ones', async () => {
    const stored = new Map<string, unknown>([
      ['step-1', { step: 1 }],
      ['step-2', { step: 2 }],
    ]);
    const { ctx, progress } = fakeContext({ attempt: 1, run: 2 }, stored);
    const result = await simulate.run(input({ durable: true, steps: 4 }), ctx);
    expect([...stored.keys()]).toEqual(['step-1', 'step-2', 'step-3', 'step-4']);
    expect(result.resumedFromStep).toBe(2);
    expect(progress.map((p) => p.percent)).toEqual([25, 50, 75, 100]);
  });

  it('when crashAtStep is asked and crashes are not allowed, then it fails permanently without running', async () => {
    const { ctx, progress } = fakeContext();
    await expect(simulate.run(input({ durable: true, crashAtStep: 2 }), ctx)).rejects.toThrow(/SIMULATE_ALLOW_CRASH/);
    expect(progress).toEqual([]);
  });

  it('when crashAtStep is given without durable or beyond the steps, then the input is refused', () => {
    const parse = (over: object) => simulate.contract.input.safeParse({ durationMs: 100, steps: 4, ...over });
    expect(parse({ crashAtStep: 2 }).success).toBe(false);
    expect(parse({ durable: true, crashAtStep: 5 }).success).toBe(false);
    expect(parse({ durable: true, steps: 1001 }).success).toBe(false);
    expect(parse({ durable: true, crashAtStep: 4 }).success).toBe(true);
  });

  it('when an execution log is configured, then each step body run appends a step line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lh-sim-'));
    try {
      const file = join(dir, 'executions.jsonl');
      const logged = createSimulate({ executionLog: file });
      const stored = new Map<string, unknown>([['step-1', { step: 1 }]]);
      await logged.run(input({ durationMs: 0, steps: 3, durable: true }), fakeContext({ run: 2 }, stored).ctx);
      const steps = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.event === 'step');
      expect(steps.map((l) => [l.step, l.run])).toEqual([
        [2, 2],
        [3, 2],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('simulate test hooks (off unless configured)', () => {
  it('when crash is asked and crashes are not allowed, then it fails permanently without running', async () => {
    const { ctx, progress } = fakeContext();
    await expect(simulate.run(input({ crash: true }), ctx)).rejects.toBeInstanceOf(PermanentError);
    await expect(simulate.run(input({ crash: true }), ctx)).rejects.toThrow(/SIMULATE_ALLOW_CRASH/);
    expect(progress).toEqual([]);
  });

  it('when an execution log is configured, then each run appends a start and a finish line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lh-sim-'));
    try {
      const file = join(dir, 'executions.jsonl');
      const logged = createSimulate({ executionLog: file });
      await logged.run(input({ durationMs: 0, steps: 1 }), fakeContext({ attempt: 2 }).ctx);
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toEqual([
        expect.objectContaining({ event: 'start', jobId: 'job_test', attempt: 2, pid: process.pid }),
        expect.objectContaining({ event: 'finish', jobId: 'job_test', attempt: 2, pid: process.pid }),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
