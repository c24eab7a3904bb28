import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildCounts } from '@longhaul/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trackDir } from '../support/child-registry.ts';
import { type ApiClient, api } from '../support/http.ts';
import { type AppProcess, startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';
import { type JobViewBody, KEY_A, KEY_B, simulate, systemEnv, waitForJob } from './fixtures.ts';

type ParentView = JobViewBody & { children?: ChildCounts; parentId?: string };

interface ExecutionLine {
  event: string;
  jobId: string;
}

/** A parent's children, every page of them. */
async function allChildren(client: ApiClient, id: string): Promise<ParentView[]> {
  const out: ParentView[] = [];
  let cursor: string | null = null;
  do {
    const res = await client.get(`/v1/jobs/${id}/children?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    out.push(...(res.body.children as ParentView[]));
    cursor = res.body.nextCursor as string | null;
  } while (cursor);
  return out;
}

const finished = (v: JobViewBody) => ['completed', 'failed', 'cancelled'].includes(v.status);

/**
 * Fan-out and fan-in (`ctx.spawn`) end to end, against a single Redis (tests/e2e) and a Redis
 * Cluster (tests/cluster): a real api and one worker process with concurrency 1, so a parent that
 * kept its worker while it waits would stop its own children from ever running.
 */
export function fanOutSuite(label: string, url?: () => string): void {
  describe(`fan-out and fan-in, real api and worker processes (${label})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'lh-fan-out-'));
    trackDir(dir);
    const executionLog = join(dir, 'executions.jsonl');
    writeFileSync(executionLog, '');
    let env: Record<string, string>;
    let apiProcess: AppProcess;
    let worker: AppProcess;
    let a: ApiClient;
    let b: ApiClient;

    beforeAll(async () => {
      env = {
        ...systemEnv(url?.() ?? redisUrl()),
        WORKER_CONCURRENCY: '1',
        MAX_CHILDREN_PER_JOB: '150',
        SIMULATE_ALLOW_CRASH: 'true',
        SIMULATE_EXECUTION_LOG: executionLog,
        LOCK_DURATION_MS: '3000',
        STALLED_INTERVAL_MS: '1000',
      };
      [apiProcess, worker] = await Promise.all([startApi(env), startWorker(env)]);
      a = api(apiProcess.url, KEY_A);
      b = api(apiProcess.url, KEY_B);
    });
    afterAll(async () => {
      await Promise.all([apiProcess?.stop(), worker?.stop()]);
      await cleanupPrefix(env.REDIS_URL as string, env.QUEUE_PREFIX as string).catch(() => undefined);
    });

    it('when a parent waits for its children, then it reads active with their counts and progress together, and completes with their results', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, steps: 1, spawn: { count: 4, child: { durationMs: 1_600, steps: 8 } } }),
      );
      expect(res.status).toBe(202);
      const id = res.body.id as string;
      const percents: number[] = [];
      const midway = (await waitForJob(
        a,
        id,
        (v) => {
          const c = (v as ParentView).children;
          if (v.status === 'active' && c && v.progress?.step === 'children') percents.push(v.progress.percent);
          return v.status === 'active' && c !== undefined && c.completed >= 1 && c.completed < 4;
        },
        60_000,
      )) as ParentView;
      expect(midway.children?.total).toBe(4);
      expect(midway.progress?.percent).toBeGreaterThan(0);
      expect(midway.progress?.percent).toBeLessThan(100);
      expect(midway.progress?.message).toMatch(/of 4 children finished/);

      const done = (await waitForJob(a, id, finished, 60_000)) as ParentView;
      expect(done.status).toBe('completed');
      expect(done.children).toEqual({ total: 4, queued: 0, active: 0, completed: 4, failed: 0, cancelled: 0 });
      expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
      expect((await a.get(`/v1/jobs/${id}/result`)).body.result.children).toEqual({
        completed: 4,
        failed: 0,
        cancelled: 0,
      });

      const children = await allChildren(a, id);
      expect(children).toHaveLength(4);
      for (const child of children) {
        expect(child).toMatchObject({ type: 'simulate', status: 'completed', parentId: id });
        expect((await a.get(`/v1/jobs/${child.id}`)).body.parentId).toBe(id);
      }
      // Paged in spawn order; another tenant sees neither the parent nor its children.
      const first = await a.get(`/v1/jobs/${id}/children?limit=3`);
      expect(first.body.children.map((c: ParentView) => c.id)).toEqual(children.slice(0, 3).map((c) => c.id));
      const second = await a.get(`/v1/jobs/${id}/children?limit=3&cursor=${first.body.nextCursor}`);
      expect(second.body).toMatchObject({ nextCursor: null, children: [{ id: children[3]?.id }] });
      expect((await b.get(`/v1/jobs/${id}/children`)).status).toBe(404);
      expect((await b.get(`/v1/jobs/${children[0]?.id}`)).status).toBe(404);
      expect((await a.get(`/v1/jobs/${id}/children?limit=0`)).status).toBe(400);
    }, 120_000);

    it('when a fan-out is asked with a bad spawn, then the submission answers 400 naming the field', async () => {
      const zero = await a.post('/v1/jobs', simulate({ durationMs: 0, spawn: { count: 0, child: { durationMs: 0 } } }));
      expect(zero.status).toBe(400);
      expect(zero.body.error.details).toEqual(
        expect.arrayContaining([expect.objectContaining({ path: 'input.spawn.count' })]),
      );
      const nested = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, spawn: { count: 1, child: { durationMs: 0, spawn: { count: 1, child: {} } } } }),
      );
      expect(nested.status).toBe(400);
      const beyond = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, spawn: { count: 2, child: { durationMs: 0 }, failChild: 3 } }),
      );
      expect(beyond.status).toBe(400);
    });

    it('when a parent is cancelled midway, then every unfinished child is cancelled and the parent ends cancelled', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, steps: 1, spawn: { count: 5, child: { durationMs: 60_000, steps: 60 } } }),
      );
      const id = res.body.id as string;
      await waitForJob(a, id, (v) => (v as ParentView).children?.active === 1, 60_000);
      const cancel = await a.delete(`/v1/jobs/${id}`);
      expect(cancel.status).toBe(202);
      expect(cancel.body.status).toBe('cancelled');

      const children = await waitFor(
        async () => {
          const list = await allChildren(a, id);
          return list.length === 5 && list.every((c) => c.status === 'cancelled') ? list : undefined;
        },
        { timeoutMs: 60_000, what: 'every child to be cancelled' },
      );
      expect(children.every((c) => c.error?.code === 'cancelled')).toBe(true);
      const done = (await waitFor(
        async () => {
          const v = (await a.get(`/v1/jobs/${id}`)).body as ParentView & { finishedAt: string | null };
          return v.finishedAt && v.children?.cancelled === 5 ? v : undefined;
        },
        { timeoutMs: 60_000, what: 'the parent to end' },
      )) as ParentView;
      expect(done.status).toBe('cancelled');
      expect(done.error?.code).toBe('cancelled');
      expect(done.children).toMatchObject({ total: 5, completed: 0, cancelled: 5 });
    }, 120_000);

    it('when a child fails for good, then the parent fails with child_failed naming that child', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, steps: 1, spawn: { count: 3, child: { durationMs: 300, steps: 1 }, failChild: 2 } }),
      );
      const id = res.body.id as string;
      const done = await waitForJob(a, id, finished, 60_000);
      expect(done.status).toBe('failed');
      expect(done.attempts.made).toBe(1);
      const children = await allChildren(a, id);
      const failedChild = children[1];
      expect(failedChild?.status).toBe('failed');
      expect(done.error?.code).toBe('child_failed');
      expect(done.error?.message).toContain(failedChild?.id);
      expect(done.error?.message).toMatch(/simulated permanent failure/);
    }, 120_000);

    it('when a child fails and the parent continues on failure, then it completes with the partial results', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({
          durationMs: 0,
          steps: 1,
          spawn: { count: 3, child: { durationMs: 200, steps: 1 }, failChild: 1, continueOnFailure: true },
        }),
      );
      const id = res.body.id as string;
      const done = (await waitForJob(a, id, finished, 60_000)) as ParentView;
      expect(done.status).toBe('completed');
      expect(done.children).toMatchObject({ total: 3, completed: 2, failed: 1 });
      expect((await a.get(`/v1/jobs/${id}/result`)).body.result.children).toEqual({
        completed: 2,
        failed: 1,
        cancelled: 0,
      });
    }, 120_000);

    it('when a parent waits on 100 children with one worker slot, then it holds no slot: all 100 run and it completes', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, steps: 1, spawn: { count: 100, child: { durationMs: 0, steps: 1 } } }),
      );
      const id = res.body.id as string;
      const done = (await waitForJob(a, id, finished, 180_000)) as ParentView;
      expect(done.status).toBe('completed');
      expect(done.children).toEqual({ total: 100, queued: 0, active: 0, completed: 100, failed: 0, cancelled: 0 });
      expect((await a.get(`/v1/jobs/${id}/result`)).body.result.children.completed).toBe(100);
      expect(await allChildren(a, id)).toHaveLength(100);
    }, 240_000);

    it('when a job asks for more children than MAX_CHILDREN_PER_JOB, then it fails for good with too_many_children', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({ durationMs: 0, steps: 1, spawn: { count: 151, child: { durationMs: 0, steps: 1 } } }),
      );
      const done = (await waitForJob(a, res.body.id, finished, 60_000)) as ParentView;
      expect(done.status).toBe('failed');
      expect(done.error?.code).toBe('too_many_children');
      expect(done.error?.message).toMatch(/MAX_CHILDREN_PER_JOB/);
      expect(done.children).toBeUndefined();
    }, 120_000);

    it('when the worker is killed -9 right after spawning, then the next run spawns nothing more and the job completes', async () => {
      const res = await a.post(
        '/v1/jobs',
        simulate({
          durationMs: 0,
          steps: 1,
          spawn: { count: 3, child: { durationMs: 200, steps: 1 }, crashAfterSpawn: true },
        }),
      );
      const id = res.body.id as string;
      const exit = await worker.exited;
      expect(exit.signal).toBe('SIGKILL');
      worker = await startWorker(env);
      const done = (await waitForJob(a, id, finished, 120_000)) as ParentView;
      expect(done.status).toBe('completed');
      expect(done.children).toMatchObject({ total: 3, completed: 3 });

      const children = await allChildren(a, id);
      expect(children).toHaveLength(3);
      const lines = readFileSync(executionLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ExecutionLine);
      // The parent ran at least twice (killed, then resumed); each child started exactly once.
      expect(lines.filter((l) => l.event === 'start' && l.jobId === id).length).toBeGreaterThanOrEqual(2);
      const childIds = new Set(children.map((c) => c.id));
      const childStarts = lines.filter((l) => l.event === 'start' && childIds.has(l.jobId));
      expect(childStarts.map((l) => l.jobId).sort()).toEqual([...childIds].sort());
      // No other child of this parent is in the tenant's list.
      const listed = (await a.get('/v1/jobs?limit=100')).body.jobs as ParentView[];
      expect(listed.filter((j) => j.parentId === id)).toHaveLength(3);
    }, 180_000);
  });
}
