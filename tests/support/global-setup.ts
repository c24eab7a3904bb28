import type { TestProject } from 'vitest/node';
import { ensureClientBuilt } from './client-build.ts';
import type {} from './provided-context.ts';
import { hasRedisServer, startRedisServer } from './redis-server.ts';

/**
 * Gives the test run one Redis, in this order:
 * 1. `REDIS_URL` from the environment (CI services, a developer's own Redis);
 * 2. a private `redis-server` on a free port when one is on PATH (no persistence, `noeviction`);
 * 3. a `redis:7-alpine` container through testcontainers (needs a Docker engine).
 * Tests read it with `redisUrl()` from tests/support/redis.ts (or `inject('redisUrl')`), and
 * isolate themselves with their own key prefix.
 *
 * It also builds the SDK (packages/client/dist) once, before any test file runs: the CLI runs from
 * it, and the package and browser tests ship it.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  ensureClientBuilt();
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    project.provide('redisUrl', fromEnv);
    return undefined;
  }

  if (hasRedisServer()) {
    const server = await startRedisServer();
    project.provide('redisUrl', server.url);
    return () => server.destroy();
  }

  // Imported only here: it is heavy and only useful on machines with Docker and no redis-server.
  const { GenericContainer, Wait } = await import('testcontainers');
  let container: Awaited<ReturnType<InstanceType<typeof GenericContainer>['start']>>;
  try {
    container = await new GenericContainer('redis:7-alpine')
      .withCommand(['redis-server', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'])
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
      .start();
  } catch (err) {
    throw new Error(
      'tests need Redis: set REDIS_URL, install redis-server (apt-get install redis-server / brew install redis), ' +
        `or run a Docker engine for testcontainers (${(err as Error).message})`,
    );
  }
  project.provide('redisUrl', `redis://${container.getHost()}:${container.getMappedPort(6379)}`);
  return async () => {
    await container.stop();
  };
}
