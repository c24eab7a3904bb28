import type { RedisConnection } from '@longhaul/shared';
import { redisUnavailable } from './redis-errors.ts';

export interface RedisLivenessOptions {
  /** A PING is sent this often while a request waits for Redis and none is outstanding. @defaultValue 200 */
  intervalMs?: number;
  /**
   * A PING is sent this often while no request waits: an idle API costs a metered Redis 30 PINGs
   * a minute, not 300. A request that arrives sends one at once when the last is older than
   * `intervalMs`, then the faster pace holds while requests wait.
   * @defaultValue 2000
   */
  idleIntervalMs?: number;
  /**
   * Redis is taken for down (frozen, or a network black hole) once a PING has waited this long and
   * nothing at all came back from Redis meanwhile. `REDIS_COMMAND_TIMEOUT_MS`.
   */
  silentMs: number;
  /** Commands already sent may take this long on a healthy but busy Redis. @defaultValue 5000 */
  requestTimeoutMs?: number;
}

/**
 * Tells a Redis that is down from one that is busy. A fixed command timeout cannot: short enough to
 * answer 503 within a second in an outage, it also sheds requests when a healthy Redis (or this
 * process) is slowed by CPU contention. So requests wait for Redis as long as it shows signs of
 * life, up to `requestTimeoutMs`, and fail at once when it does not:
 * - the connection is not `ready` (closed, reconnecting): ioredis' disabled offline queue already
 *   fails commands at once, and {@link alive} is false;
 * - the connection is open but Redis is silent (SIGSTOP, a black hole): a PING outstanding for
 *   `silentMs` with no byte received meanwhile marks it down, and every waiting request answers 503.
 *   A PING goes every `intervalMs` while a request waits, every `idleIntervalMs` otherwise, and
 *   at once for a request that finds the last one older than `intervalMs`: a request that meets a
 *   silent Redis after an idle spell answers 503 within `silentMs` and a tick, as one does under
 *   load.
 */
export function createRedisLiveness(
  redis: RedisConnection,
  { intervalMs = 200, idleIntervalMs = 2_000, silentMs, requestTimeoutMs = 5_000 }: RedisLivenessOptions,
) {
  let pingSentAt: number | null = null;
  let lastPingAt = 0;
  let lastHeardAt = Date.now();
  let silent = false;
  const waiters = new Set<(err: Error) => void>();
  const heard = () => {
    lastHeardAt = Date.now();
  };
  // Any reply counts as a sign of life, not only our PING's (a single node; a cluster relies on PING).
  const watchSocket = () => (redis as { stream?: NodeJS.EventEmitter }).stream?.on('data', heard);
  redis.on('ready', watchSocket);
  watchSocket();
  // PING on a connection of its own: on `redis` it would queue behind a command Redis holds back
  // (a paused write, a blocked script) and take a busy Redis for a silent one.
  const probe = redis.duplicate();
  probe.on('error', () => undefined);

  const markDown = () => {
    silent = true;
    const err = redisUnavailable('Redis is not answering; try again shortly');
    for (const reject of [...waiters]) reject(err);
  };

  /** Sends a PING unless one is outstanding or the connections are not up. */
  const ping = (now: number) => {
    if (pingSentAt !== null || redis.status !== 'ready' || probe.status !== 'ready') return;
    pingSentAt = now;
    lastPingAt = now;
    probe
      .ping()
      .then(() => {
        heard();
        silent = false;
      })
      .catch(() => undefined)
      .finally(() => {
        pingSentAt = null;
      });
  };

  const tick = setInterval(() => {
    // Checked after this turn's I/O (setImmediate): a reply already received but not yet read
    // while this process was busy must not count as silence.
    setImmediate(() => {
      const now = Date.now();
      if (pingSentAt !== null) {
        if (now - pingSentAt > silentMs && now - lastHeardAt > silentMs && !silent) markDown();
        return;
      }
      if (waiters.size === 0 && now - lastPingAt < idleIntervalMs) return;
      ping(now);
    });
  }, intervalMs);
  tick.unref();
  // The probe lives as long as the connection it watches (main.ts quits that one on shutdown).
  redis.once('end', () => stop());

  function stop(): void {
    clearInterval(tick);
    redis.off('ready', watchSocket);
    probe.disconnect();
  }

  return {
    /** False while the connection is not ready or Redis is silent: answer 503 without trying. */
    alive(): boolean {
      return !silent && (redis.status === 'ready' || redis.status === 'connect');
    },
    /**
     * `work`, or a 503 as soon as Redis is found down, or after `requestTimeoutMs` (the backstop for
     * a promise that waits on a connection that never comes).
     */
    async deadline<T>(work: Promise<T>): Promise<T> {
      let timer: NodeJS.Timeout | undefined;
      let reject: ((err: Error) => void) | undefined;
      try {
        return await Promise.race([
          work,
          new Promise<never>((_, r) => {
            reject = r;
            waiters.add(r);
            // The first request after an idle spell probes at once rather than at the next tick.
            const now = Date.now();
            if (now - lastPingAt >= intervalMs) ping(now);
            timer = setTimeout(
              () => r(redisUnavailable('Redis did not answer in time; try again shortly')),
              requestTimeoutMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
        if (reject) waiters.delete(reject);
      }
    },
    stop,
  };
}

export type RedisLiveness = ReturnType<typeof createRedisLiveness>;
