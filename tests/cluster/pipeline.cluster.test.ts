import { afterAll, beforeAll } from 'vitest';
import { fanOutSuite } from '../e2e/fan-out-suite.ts';
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
// Fan-out: a parent and its children share the prefix's hash tag, so BullMQ's parent scripts and
// ours never cross slots (bullmq#2589).
fanOutSuite('3-master Redis Cluster', () => cluster.url);
