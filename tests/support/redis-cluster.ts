import { spawnSync } from 'node:child_process';
import { Cluster } from 'ioredis';
import { type RedisServer, startRedisServer } from './redis-server.ts';
import { waitFor } from './wait.ts';

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, as longhaul's REDIS_URL takes it. */
  readonly url: string;
  readonly nodes: RedisServer[];
  destroy(): Promise<void>;
}

/**
 * A local Redis Cluster of `masters` nodes on loopback ports (no replicas), created with
 * `redis-cli --cluster create` and waited on until every slot is served.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedisServer({
          extraArgs: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '5000',
          ],
        }),
      );
    }
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}${created.stderr}`);
    const url = `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
    const probe = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
    probe.on('error', () => undefined);
    try {
      await waitFor(async () => /cluster_state:ok/.test(await probe.cluster('INFO')), {
        timeoutMs: 20_000,
        what: 'the cluster to serve every slot',
      });
    } finally {
      probe.disconnect();
    }
    return {
      url,
      nodes,
      async destroy() {
        await Promise.all(nodes.map((n) => n.destroy()));
      },
    };
  } catch (err) {
    await Promise.all(nodes.map((n) => n.destroy()));
    throw err;
  }
}
