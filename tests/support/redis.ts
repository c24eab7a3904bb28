import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import type {} from './provided-context.ts';

/**
 * The Redis URL of this test run: `REDIS_URL` when the run was given one, otherwise the private
 * redis-server (or container) that the global setup started.
 */
export function redisUrl(): string {
  const url = inject('redisUrl') ?? process.env.REDIS_URL;
  if (!url) throw new Error('no Redis for tests: run through vitest.config.ts (its globalSetup provides one)');
  return url;
}

/**
 * A fresh `QUEUE_PREFIX` / key prefix, `{lh-test-<random>}`. The braces make it a Redis Cluster
 * hash tag, like the production default `{longhaul}`. One per test file, so files never see each
 * other's queues.
 */
export function uniquePrefix(): string {
  return `{lh-test-${randomBytes(6).toString('hex')}}`;
}

/** Escapes Redis glob metacharacters so `prefix` matches literally in `SCAN MATCH`. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key that starts with `prefix` (SCAN + UNLINK, never KEYS), for `afterAll`.
 * Returns how many keys were removed.
 */
export async function cleanupPrefix(url: string, prefix: string): Promise<number> {
  if (!prefix) throw new Error('cleanupPrefix needs a non-empty prefix');
  // A test cluster is destroyed whole; SCAN on one node would see only its own slots.
  if (url.includes('+cluster://')) return 0;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectionName: 'lh-test-cleanup' });
  await redis.connect();
  let removed = 0;
  try {
    const stream = redis.scanStream({ match: `${escapeGlob(prefix)}*`, count: 1000 });
    for await (const keys of stream as AsyncIterable<string[]>) {
      if (keys.length > 0) removed += await redis.unlink(...keys);
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
  return removed;
}

/** What {@link watchCommands} saw. */
export interface CommandWatch {
  /** Stops watching; resolves with each command that named `prefix`, as `[NAME, ...args]`. */
  stop(): Promise<string[][]>;
}

/** The quoted arguments of one MONITOR line (`+<time> [<db> <client>] "name" "arg" ...`). */
function monitorArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(([, quoted]) =>
    (quoted ?? '').replace(/\\(x[0-9a-f]{2}|.)/g, (_, e: string) =>
      e.length === 3 ? String.fromCharCode(Number.parseInt(e.slice(1), 16)) : e,
    ),
  );
}

/**
 * Watches the commands Redis runs (MONITOR: those inside scripts too) that name a key or argument
 * starting with `prefix`, so a test sees what one operation costs whatever else shares the server.
 * MONITOR runs on a socket of its own: ioredis' monitor mode can fail to parse a line that
 * arrives before it has switched (redis/ioredis#1981).
 */
export async function watchCommands(url: string, prefix: string): Promise<CommandWatch> {
  if (!url.startsWith('redis://'))
    throw new Error(`watchCommands needs a plain redis:// URL, not ${url.split(':')[0]}`);
  const { hostname, port, username, password } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port || 6379) });
  // An AUTH's +OK comes first, then MONITOR's.
  let oks = password ? 2 : 1;
  const seen: string[][] = [];
  const fence = `${prefix}:lh-test-fence`;
  let fenced: (() => void) | undefined;
  let monitoring: (() => void) | undefined;
  let refused: ((err: Error) => void) | undefined;
  const started = new Promise<void>((resolve, reject) => {
    monitoring = resolve;
    refused = reject;
  });
  socket.on('error', (err) => refused?.(err));
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let end = buffered.indexOf('\r\n');
    while (end >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      end = buffered.indexOf('\r\n');
      if (line === '+OK' && --oks === 0) monitoring?.();
      if (line.startsWith('-')) refused?.(new Error(`MONITOR: ${line.slice(1)}`));
      const args = monitorArgs(line);
      if (args[1] === fence) fenced?.();
      else if (args.some((a) => a.startsWith(prefix))) seen.push([String(args[0]).toUpperCase(), ...args.slice(1)]);
    }
  });
  const quote = (text: string) => `"${decodeURIComponent(text).replace(/["\\]/g, '\\$&')}"`;
  if (password) socket.write(`AUTH ${username ? `${quote(username)} ` : ''}${quote(password)}\r\n`);
  socket.write('MONITOR\r\n');
  await started;
  return {
    async stop() {
      // MONITOR's lines may arrive after the replies: wait for a command sent last.
      const reached = new Promise<void>((resolve) => {
        fenced = resolve;
      });
      const probe = new Redis(url);
      await probe.exists(fence);
      await reached;
      await probe.quit();
      socket.destroy();
      return seen;
    },
  };
}
