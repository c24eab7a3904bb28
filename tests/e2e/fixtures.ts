import { type ApiClient, api } from '../support/http.ts';
import { startApi, startWorker } from '../support/processes.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

export const KEY_A = 'e2e-tenant-a-key-000000';
export const KEY_B = 'e2e-tenant-b-key-000000';

/** The environment every process of one test file shares: one Redis, one private prefix. */
export function systemEnv(url = redisUrl(), prefix = uniquePrefix()): Record<string, string> {
  return {
    REDIS_URL: url,
    QUEUE_PREFIX: prefix,
    API_KEYS: `a:${KEY_A},b:${KEY_B}`,
    LOG_LEVEL: 'info',
  };
}

export type ProcessHandle = Awaited<ReturnType<typeof startApi>>;

/** A real api and worker process on one prefix, and a client for each tenant. */
export async function startSystem(extra: Record<string, string> = {}, url = redisUrl()) {
  const env = { ...systemEnv(url), ...extra };
  // startApi resolves once the API is ready: it reaches Redis (a cluster has its slots).
  const [apiProcess, worker] = await Promise.all([startApi(env), startWorker(env)]);
  return {
    env,
    api: apiProcess,
    worker,
    a: api(apiProcess.url, KEY_A),
    b: api(apiProcess.url, KEY_B),
    async stop() {
      await Promise.all([apiProcess.stop(), worker.stop()]);
      await cleanupPrefix(url, env.QUEUE_PREFIX ?? '').catch(() => undefined);
    },
  };
}

export interface JobViewBody {
  id: string;
  status: string;
  progress: { percent: number; step: string; message?: string } | null;
  attempts: { made: number; max: number };
  error: { code: string; message: string } | null;
  startedAt: string | null;
}

/** Polls the job until `until(view)` holds. */
export function waitForJob(
  client: ApiClient,
  id: string,
  until: (view: JobViewBody) => boolean,
  timeoutMs = 20_000,
): Promise<JobViewBody> {
  return waitFor(
    async () => {
      const res = await client.get<JobViewBody>(`/v1/jobs/${id}`);
      return res.status === 200 && until(res.body) ? res.body : undefined;
    },
    { timeoutMs, intervalMs: 50, what: `job ${id}` },
  );
}

export const simulate = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'simulate',
  input,
  ...extra,
});
