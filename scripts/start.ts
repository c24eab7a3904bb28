/**
 * `pnpm start`: runs the whole system on one machine for a new user.
 *
 * 1. Redis: `REDIS_URL` if set; else a Redis already answering on 127.0.0.1:6379; else a
 *    `redis-server` started here on 6379 with AOF on and its data under `.data/redis` (stopped on exit).
 * 2. An API key: `API_KEYS` if set; else a dev key generated once into `.data/dev-api-key` (tenant `dev`).
 *    Likewise Bull Board credentials into `.data/dev-admin-password` when ADMIN_USER/ADMIN_PASSWORD are unset.
 * 3. The API (`PORT`, default 3000) and one worker (`WORKER_PORT`, default 3001), output prefixed
 *    `[api]` / `[worker]`; once both answer /healthz it prints the URLs and a curl example.
 *
 * `--prod` (`pnpm start:prod`, which runs `pnpm build` first) starts the production bundles,
 * `node apps/api/dist/main.js` and `node apps/worker/dist/main.js`, instead of the sources through
 * tsx, with `NODE_ENV=production` and plain JSON logs unless set otherwise: what a deployment runs,
 * and what benchmark figures should come from.
 *
 * Ctrl-C / SIGTERM / SIGHUP (the terminal closed): SIGTERM to the API and the worker (the worker
 * hands its active jobs back to the queue), wait for them, then stop the Redis started here;
 * exit 0. A child that dies on its own stops everything; exit 1. The children run in their own
 * process groups so that a Ctrl-C reaches them once, through this script, in that order: Redis
 * must outlive the worker's drain.
 *
 * package.json runs it as `exec node --import tsx scripts/start.ts`, and the apps' own `start`
 * scripts the same way:
 * - Without `exec`, pnpm runs the script under `sh -c`, and Debian's sh (dash) re-raises a Ctrl-C
 *   on itself once its child has exited, even with 0: pnpm then printed `ELIFECYCLE Command
 *   failed` after a clean shutdown and exited by SIGINT (tests/operator/quick-start.e2e.test.ts).
 * - Not through the `tsx` command: it runs the script in a child process, and when that child
 *   has not told it within 30 ms that it got the Ctrl-C, it sends the signal again, waits 30 ms
 *   more, then SIGKILLs it and exits 130 (https://github.com/privatenumber/tsx/pull/395). On a
 *   busy machine that killed this script in the middle of its shutdown, leaving the API and the
 *   worker running in their own process groups. `--import tsx` compiles in this process instead.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { REPEAT_WINDOW_MS } from '@longhaul/shared/shutdown';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA = join(ROOT, '.data');
const REDIS_PORT = 6379;
/** How long the API and the worker may take to answer /healthz: a slow, busy machine compiling them through tsx takes a while. */
const READY_TIMEOUT_MS = 60_000;
/** Upper bound for the API and worker to exit after SIGTERM: above the worker's default 30 s grace. */
const STOP_TIMEOUT_MS = Number(process.env.SHUTDOWN_GRACE_MS ?? 30_000) + 15_000;

/** Run the built bundles (see the header). */
const PROD = process.argv.includes('--prod');
const ENTRIES = PROD
  ? { api: ['apps/api/dist/main.js'], worker: ['apps/worker/dist/main.js'] }
  : { api: ['--import', 'tsx', 'apps/api/src/main.ts'], worker: ['--import', 'tsx', 'apps/worker/src/main.ts'] };

const tty = process.stdout.isTTY === true;
const paint = (code: number, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const say = (text: string) => process.stdout.write(`${paint(90, '[start]')} ${text}\n`);
const warn = (text: string) => process.stderr.write(`${paint(33, '[start]')} ${text}\n`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  done: boolean;
}

const children: Child[] = [];
let startedRedis: Child | undefined;
let shuttingDown = false;

// Last resort: if this script crashes, do not leave its children running.
process.on('exit', () => {
  for (const child of [...children, ...(startedRedis ? [startedRedis] : [])]) {
    if (!child.done) child.proc.kill('SIGKILL');
  }
});

type PingResult = 'pong' | 'refused' | 'other';

/** One raw `PING`: `pong`, `refused` (nothing listens) or `other` (something answers, not a usable Redis). */
function ping(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<PingResult> {
  return new Promise((resolve) => {
    let reply = '';
    let connected = false;
    let settled = false;
    const socket = connect({ port, host });
    const finish = (result: PingResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(connected ? 'other' : 'refused'), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('error', () => finish(connected ? 'other' : 'refused'));
    socket.on('close', () => finish(connected ? 'other' : 'refused'));
    socket.on('connect', () => {
      connected = true;
      socket.write('PING\r\n');
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG') ? 'pong' : 'other');
    });
  });
}

/** `true` when nothing listens on `port` (so the API or worker can take it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port }, () => server.close(() => resolve(true)));
  });
}

function hasRedisServer(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

/** Pipes each line of the child's output to ours with a `[name]` prefix. */
function prefixOutput(proc: ChildProcess, label: string): void {
  const pipe = (from: NodeJS.ReadableStream | null, to: NodeJS.WriteStream) => {
    if (!from) return;
    createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
      to.write(`${label} ${line}\n`);
    });
  };
  pipe(proc.stdout, process.stdout);
  pipe(proc.stderr, process.stderr);
}

function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, label: string): Child {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const child: Child = {
    name,
    proc,
    done: false,
    exited: new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        child.done = true;
        resolve({ code, signal });
      });
      proc.once('error', (err) => {
        child.done = true;
        warn(`${name} could not start: ${err.message}`);
        resolve({ code: null, signal: null });
      });
    }),
  };
  prefixOutput(proc, label);
  return child;
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the child has exited. */
async function terminate(child: Child, timeoutMs: number): Promise<void> {
  if (child.done) return;
  child.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    child.exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    warn(`${child.name} did not exit within ${timeoutMs} ms of SIGTERM: killing it`);
    child.proc.kill('SIGKILL');
    await child.exited;
  }
}

let stopping: Promise<never> | undefined;

/** Stops the API and the worker, then the Redis started here, then exits. Only the first call counts. */
function shutdown(exitCode: number): Promise<never> {
  shuttingDown = true;
  stopping ??= (async () => {
    await Promise.all(children.map((child) => terminate(child, STOP_TIMEOUT_MS)));
    if (startedRedis) {
      say('stopping the redis-server started by pnpm start (its data stays in .data/redis)');
      await terminate(startedRedis, 15_000);
    }
    process.exit(exitCode);
  })();
  return stopping;
}

async function resolveRedis(): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  const local = await ping(REDIS_PORT);
  if (local === 'pong') {
    say(`using the Redis already running on 127.0.0.1:${REDIS_PORT}`);
    return `redis://127.0.0.1:${REDIS_PORT}`;
  }
  if (local === 'other') {
    warn(
      `something listens on 127.0.0.1:${REDIS_PORT} but does not answer PING (a password?). ` +
        'Set REDIS_URL, e.g. REDIS_URL=redis://:password@127.0.0.1:6379 pnpm start',
    );
    process.exit(1);
  }
  if (!hasRedisServer()) {
    warn('longhaul needs Redis 7 and none is running on 127.0.0.1:6379. Either:');
    warn('  - install it: `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS),');
    warn('    then run `pnpm start` again (it starts redis-server by itself), or');
    warn('  - point at one: REDIS_URL=redis://host:6379 pnpm start');
    process.exit(1);
  }
  const dir = join(DATA, 'redis');
  mkdirSync(dir, { recursive: true });
  say(`starting redis-server on 127.0.0.1:${REDIS_PORT} (AOF on, data in .data/redis)`);
  startedRedis = launch(
    'redis',
    'redis-server',
    [
      '--port',
      String(REDIS_PORT),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--maxmemory-policy',
      'noeviction',
      '--logfile',
      join(dir, 'redis.log'),
    ],
    process.env,
    paint(31, '[redis]'),
  );
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !startedRedis.done) {
    if ((await ping(REDIS_PORT, '127.0.0.1', 500)) === 'pong') return `redis://127.0.0.1:${REDIS_PORT}`;
    await sleep(100);
  }
  const logFile = join(dir, 'redis.log');
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
  warn(`redis-server did not become ready; the end of .data/redis/redis.log:\n${tail}`);
  return shutdown(1);
}

/** Reads `.data/<file>`, or writes `make()` there first (owner-only), and returns it. */
function devSecret(file: string, make: () => string): string {
  const path = join(DATA, file);
  if (existsSync(path)) {
    const stored = readFileSync(path, 'utf8').trim();
    if (stored) return stored;
  }
  mkdirSync(DATA, { recursive: true });
  const value = make();
  writeFileSync(path, `${value}\n`, { mode: 0o600 });
  return value;
}

async function waitHealthy(child: Child, url: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline && !child.done) {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  if (!shuttingDown) {
    warn(
      child.done
        ? `${child.name} exited during start-up (see its output above)`
        : `${child.name} is not healthy after ${READY_TIMEOUT_MS / 1000} s`,
    );
    await shutdown(1);
  }
}

async function main(): Promise<void> {
  // A closed terminal hangs up (SIGHUP) and takes our output with it: writes to it fail from then
  // on (EIO), and an unheard write error would end this script before it stopped the apps.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  let signalledAt = 0;
  // SIGHUP too: the API and the worker run in process groups of their own, so a closed terminal
  // hangs up only this script, which must stop them (left alone, they kept running).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      // A terminal Ctrl-C can reach us twice (directly and relayed by pnpm): only a second
      // Ctrl-C well after the first forces the exit, as in the apps' own shutdown.
      if (shuttingDown) {
        if (Date.now() - signalledAt >= REPEAT_WINDOW_MS) {
          warn('forced exit: killing everything');
          process.exit(1);
        }
        return;
      }
      signalledAt = Date.now();
      say(`${signal}: stopping the api and the worker (Ctrl-C again to force)`);
      void shutdown(0);
    });
  }

  const port = Number(process.env.PORT ?? 3000);
  const workerPort = Number(process.env.WORKER_PORT ?? 3001);
  for (const [name, p, variable] of [
    ['api', port, 'PORT'],
    ['worker', workerPort, 'WORKER_PORT'],
  ] as const) {
    if (!(await portFree(p))) {
      warn(`port ${p} (${name}) is already in use: stop what uses it, or choose another: ${variable}=... pnpm start`);
      process.exit(1);
    }
  }

  if (PROD) {
    const missing = [ENTRIES.api[0], ENTRIES.worker[0]].filter((entry) => !existsSync(join(ROOT, entry as string)));
    if (missing.length > 0) {
      warn(`${missing.join(' and ')} not found: build first (\`pnpm build\`; \`pnpm start:prod\` does both)`);
      process.exit(1);
    }
  }

  const redisUrl = await resolveRedis();

  let apiKeys = process.env.API_KEYS;
  let keyNote = '';
  if (!apiKeys) {
    const key = devSecret('dev-api-key', () => `lh_dev_${randomBytes(24).toString('base64url')}`);
    apiKeys = `dev:${key}`;
    keyNote = ' (tenant "dev", stored in .data/dev-api-key)';
  }
  const firstKey = apiKeys.split(',')[0]?.split(':').slice(1).join(':').trim() ?? '';

  const admin: NodeJS.ProcessEnv = {};
  let adminNote = 'credentials from ADMIN_USER / ADMIN_PASSWORD';
  if (!process.env.ADMIN_USER && !process.env.ADMIN_PASSWORD) {
    admin.ADMIN_USER = 'admin';
    admin.ADMIN_PASSWORD = devSecret('dev-admin-password', () => randomBytes(12).toString('base64url'));
    adminNote = `user "admin", password "${admin.ADMIN_PASSWORD}" (.data/dev-admin-password)`;
  }

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...admin,
    REDIS_URL: redisUrl,
    API_KEYS: apiKeys,
    PORT: String(port),
    WORKER_PORT: String(workerPort),
    LOG_PRETTY: process.env.LOG_PRETTY ?? (tty && !PROD ? 'true' : 'false'),
    ...(PROD ? { NODE_ENV: process.env.NODE_ENV ?? 'production' } : {}),
  };
  if (PROD) say('starting the built bundles (apps/*/dist/main.js)');
  const api = launch('api', process.execPath, ENTRIES.api, env, paint(36, '[api]'));
  const worker = launch('worker', process.execPath, ENTRIES.worker, env, paint(35, '[worker]'));
  children.push(api, worker);
  for (const child of children) {
    void child.exited.then(({ code, signal }) => {
      if (shuttingDown) return;
      warn(`${child.name} exited unexpectedly (${signal ?? `code ${code}`}): stopping everything`);
      void shutdown(1);
    });
  }

  const apiUrl = `http://localhost:${port}`;
  const workerUrl = `http://localhost:${workerPort}`;
  await Promise.all([
    waitHealthy(api, `http://127.0.0.1:${port}`),
    waitHealthy(worker, `http://127.0.0.1:${workerPort}`),
  ]);
  if (shuttingDown) return;

  const auth = `-H "Authorization: Bearer ${firstKey}"`;
  const body = `'{"type":"simulate","input":{"durationMs":5000,"steps":5}}'`;
  const lines = [
    '',
    paint(32, 'longhaul is running'),
    `  API            ${apiUrl}`,
    `  API docs       ${apiUrl}/docs`,
    `  Bull Board     ${apiUrl}/admin/queues  ${adminNote}`,
    `  Worker health  ${workerUrl}/healthz  (ready: ${workerUrl}/readyz)`,
    `  Redis          ${redisUrl.replace(/\/\/[^@/]*@/, '//***@')}${startedRedis ? '  (started here, data in .data/redis)' : ''}`,
    `  API key        ${firstKey}${keyNote}`,
    '',
    'Try it: submit a 5-second job, then read it:',
    '',
    `  JOB=$(curl -s -X POST ${apiUrl}/v1/jobs ${auth} -H "Content-Type: application/json" \\`,
    `    -d ${body} | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).id')`,
    `  curl -s ${apiUrl}/v1/jobs/$JOB ${auth}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (err: unknown) => {
  warn(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await shutdown(1);
});
