import { afterAll, beforeAll } from 'vitest';
import { pipelineSuite } from '../e2e/pipeline-suite.ts';
import { type RedisCluster, startRedisCluster } from '../support/redis-cluster.ts';

// The whole end-to-end pipeline against a local 3-master Redis Cluster: every key longhaul and
// BullMQ use carries the `{…}` hash tag of QUEUE_PREFIX, so each queue's keys share one slot.
let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);
afterAll(async () => {
  await cluster?.destroy();
});

pipelineSuite('3-master Redis Cluster', () => cluster.url);
