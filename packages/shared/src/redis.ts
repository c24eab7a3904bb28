import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * What a connection is for; each role trades patience for speed differently.
 * - `producer`: the API's request path. Fails a command fast (no offline queue, one retry, a
 *   command timeout) so a request answers 503 instead of hanging while Redis is down or frozen.
 * - `worker`: BullMQ workers, QueueEvents and subscribers. Waits for Redis forever
 *   (`maxRetriesPerRequest: null`, as BullMQ requires for blocking commands).
 */
export type RedisRole = 'producer' | 'worker';

export interface RedisConnectionOptions {
  /** Producer role: a command that takes longer fails. @defaultValue 500 */
  commandTimeoutMs?: number;
  /** CLIENT SETNAME, to tell connections apart in `CLIENT LIST`. */
  name?: string;
}

export type RedisConnection = Redis | Cluster;

function roleOptions(role: RedisRole, opts: RedisConnectionOptions): RedisOptions {
  const common: RedisOptions = {
    // Railway's private network is IPv6-only; family 0 resolves both A and AAAA records.
    family: 0,
    connectionName: opts.name,
    connectTimeout: 2_000,
  };
  if (role === 'producer') {
    return {
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      // Reconnect quickly and keep trying: the API recovers by itself when Redis returns.
      retryStrategy: (times) => Math.min(times * 100, 1_000),
    };
  }
  return {
    ...common,
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  };
}

/** `h1:p1,h2:p2` → seed nodes. */
function hostList(list: string): { host: string; port: number }[] {
  return list.split(',').map((hp) => {
    const [host, port] = hp.split(':');
    return { host: host || '127.0.0.1', port: Number(port || 6379) };
  });
}

/**
 * The one place that builds Redis connections.
 *
 * - `redis://` and `rediss://` (TLS): a single node.
 * - `redis+cluster://h1:p1,h2:p2` (or `rediss+cluster://`): a Redis Cluster from those seeds.
 * - `redis+sentinel://[user:pass@]s1:p1,s2:p2/<master name>[/db]` (or `rediss+sentinel://`): the
 *   current master of `<master name>` as the sentinels report it, followed through fail-overs.
 */
export function createRedisConnection(
  url: string,
  role: RedisRole,
  opts: RedisConnectionOptions = {},
): RedisConnection {
  const options = roleOptions(role, opts);
  const sentinel = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?$/.exec(url);
  if (sentinel) {
    const [, scheme, auth, hosts = '', name, db] = sentinel;
    const [username, password] = (auth ?? '').split(':').map((p) => (p ? decodeURIComponent(p) : undefined));
    return new Redis({
      ...options,
      sentinels: hostList(hosts),
      name: decodeURIComponent(name ?? 'mymaster'),
      db: db ? Number(db) : 0,
      username,
      password,
      ...(scheme === 'rediss' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  }
  const cluster = /^(rediss?)\+cluster:\/\/(.*)$/.exec(url);
  if (cluster) {
    const tls = cluster[1] === 'rediss';
    const parsed = new URL(`${cluster[1]}://${cluster[2]?.split(',')[0] ?? ''}`);
    const nodes = (cluster[2] ?? '')
      .replace(/^[^@]*@/, '')
      .split(',')
      .map((hp) => {
        const [host, port] = hp.replace(/\/.*$/, '').split(':');
        return { host: host ?? '127.0.0.1', port: Number(port ?? 6379) };
      });
    const { maxRetriesPerRequest, enableOfflineQueue, retryStrategy, ...nodeOptions } = options;
    return new Cluster(nodes, {
      enableOfflineQueue: enableOfflineQueue ?? true,
      clusterRetryStrategy: retryStrategy,
      redisOptions: {
        ...nodeOptions,
        maxRetriesPerRequest,
        username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
        password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
        tls: tls ? {} : undefined,
      },
    });
  }
  return new Redis(url, options);
}

/** The URL with its password replaced, for logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@').replace(/(\/\/)([^:/@]+)@/, '$1***@');
}

/** Resolves when the connection is ready, or rejects after `timeoutMs`. */
export async function pingWithin(redis: RedisConnection, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
