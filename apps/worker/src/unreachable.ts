import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger, RedisConnection } from '@longhaul/shared';

/** How often a shutdown looks at the connection while it waits for a close. */
const CHECK_MS = 200;
/**
 * How long Redis must have been unreachable, without a break, before a shutdown stops waiting for
 * it: a restart or failover of a few seconds is waited out, and what it held completes or is
 * handed back as usual.
 */
export const UNREACHABLE_FOR_MS = 3_000;

/**
 * Waits for `closing` (a BullMQ Worker's `close()`), or for Redis to have been unreachable for
 * {@link UNREACHABLE_FOR_MS} while `idle()` holds: true once closed, false in the second case.
 *
 * BullMQ's `Worker.close()` does not return while Redis is unreachable, even with nothing running
 * (https://github.com/taskforcesh/bullmq/issues/4656, open against the pinned version): its
 * blocking connection waits for an `end` event that a reconnecting client never emits, and a
 * shutdown would wait for its whole deadline and exit 1. With Redis unreachable nothing can be
 * written anyway: what this process held is recovered as stalled once Redis returns, as after a
 * crash.
 */
export async function closedOrUnreachable(
  closing: Promise<unknown>,
  connection: RedisConnection,
  idle: () => boolean = () => true,
): Promise<boolean> {
  const done = new AbortController();
  const unreachable = async (): Promise<false> => {
    let since = Number.POSITIVE_INFINITY;
    for (;;) {
      await sleep(CHECK_MS, undefined, { signal: done.signal });
      if (connection.status === 'ready') since = Number.POSITIVE_INFINITY;
      else since = Math.min(since, Date.now());
      if (Date.now() - since >= UNREACHABLE_FOR_MS && idle()) return false;
    }
  };
  try {
    return await Promise.race([closing.then(() => true as const), unreachable()]);
  } finally {
    done.abort();
  }
}

/**
 * Logs a BullMQ Worker's `error` events as `message`: at warn, but at debug while Redis is
 * unreachable, when BullMQ repeats its connection error at every retry (main.ts's connection
 * handler reports each distinct one once).
 */
export function logWorkerErrors(
  worker: { on(event: 'error', listener: (err: Error) => void): unknown },
  connection: RedisConnection,
  log: Logger,
  message: string,
): void {
  worker.on('error', (err) => log[connection.status === 'ready' ? 'warn' : 'debug']({ err: err.message }, message));
}
