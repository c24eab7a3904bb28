import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackChild, trackDir, untrackDir } from './child-registry.ts';
import { freePort } from './ports.ts';
import { pingRedis } from './redis-ping.ts';
import { withTimeout } from './wait.ts';

export interface RedisServerOptions {
  /** Turn the append-only file on, so data survives {@link RedisServer.restart}. Default `false`. */
  appendonly?: boolean;
  /**
   * AOF fsync policy when `appendonly` is on. Default `'always'`: a test that SIGKILLs Redis and
   * restarts it must not lose the last second of writes by chance (Redis' own default is `everysec`).
   */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** TCP port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Working directory (AOF files). Default: a fresh temp dir, removed by {@link RedisServer.destroy}. */
  dir?: string;
  /** `maxmemory`, e.g. `'64mb'`. Default: unlimited. The policy is always `noeviction`, as in production. */
  maxmemory?: string;
  /** More `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  extraArgs?: string[];
  /** How long to wait for PING after spawning. Default 10 s. */
  readyTimeoutMs?: number;
}

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** pid of the current redis-server process (changes on restart). */
  readonly pid: number;
  /** Everything the current and previous processes wrote to stdout/stderr. */
  logs(): string;
  /** Graceful stop (SIGTERM: Redis flushes the AOF and exits), waiting for the exit. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash or an OOM kill, waiting for the exit. Idempotent. */
  kill(): Promise<void>;
  /** SIGSTOP: the port stays open but nothing answers (a hung Redis, a network black hole). */
  freeze(): void;
  /** SIGCONT after {@link freeze}. */
  thaw(): void;
  /**
   * Stop (gracefully, if still running) and start again on the same port and dir, so AOF data
   * survives. `overrides` changes options for the new process (port and dir are kept).
   */
  restart(overrides?: Omit<RedisServerOptions, 'port' | 'dir'>): Promise<void>;
  /** Stop and remove the temp dir this handle created (a caller-given `dir` is kept). */
  destroy(): Promise<void>;
}

/** True when a `redis-server` binary can be run. */
export function hasRedisServer(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

function buildArgs(port: number, dir: string, opts: RedisServerOptions): string[] {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    opts.appendonly ? 'yes' : 'no',
    '--appendfsync',
    opts.appendfsync ?? 'always',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--logfile',
    '',
  ];
  if (opts.maxmemory) args.push('--maxmemory', opts.maxmemory);
  if (opts.extraArgs) args.push(...opts.extraArgs);
  return args;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function waitExit(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a private `redis-server` (no RDB snapshots, `noeviction`) for tests that need to stop,
 * kill, freeze or restart Redis. The process is SIGKILLed if the test process exits first.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  let opts: RedisServerOptions = { ...options };
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'lh-redis-'));
  if (ownDir) trackDir(dir);
  let output = '';
  let child: ChildProcess | undefined;
  let port = options.port ?? 0;

  async function spawnOnce(p: number): Promise<ChildProcess> {
    const proc = spawn('redis-server', buildArgs(p, dir, opts), { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(proc);
    const append = (chunk: Buffer) => {
      output += chunk.toString('utf8');
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    // Keep an 'error' listener for the life of the process: an unhandled one would crash the tests.
    const spawnError = new Promise<Error>((resolve) => proc.on('error', resolve));
    const exited = waitExit(proc);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
    while (Date.now() < deadline) {
      const failed = await Promise.race([spawnError, exited, sleep(0).then(() => undefined)]);
      if (failed instanceof Error) throw new Error(`cannot run redis-server: ${failed.message}`);
      if (failed) {
        throw new Error(
          `redis-server on port ${p} exited (${failed.code ?? failed.signal}) before answering PING:\n${output}`,
        );
      }
      if (await pingRedis(p, '127.0.0.1', 250)) return proc;
      await sleep(50);
    }
    proc.kill('SIGKILL');
    await exited;
    throw new Error(
      `redis-server on port ${p} did not answer PING within ${opts.readyTimeoutMs ?? 10_000} ms:\n${output}`,
    );
  }

  async function launch(): Promise<void> {
    if (options.port !== undefined || port !== 0) {
      child = await spawnOnce(port);
      return;
    }
    // The free port may be taken between freePort() and redis binding it: retry with another one.
    for (let attempt = 1; ; attempt++) {
      const candidate = await freePort();
      try {
        child = await spawnOnce(candidate);
        port = candidate;
        return;
      } catch (err) {
        if (attempt >= 3 || !/Address already in use/i.test(String(err))) throw err;
      }
    }
  }

  async function terminate(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = waitExit(proc);
    if (signal === 'SIGTERM') {
      proc.kill('SIGCONT'); // a frozen Redis cannot handle SIGTERM
      proc.kill('SIGTERM');
      if (await withTimeout(exited, 15_000)) return;
    }
    proc.kill('SIGKILL');
    await exited;
  }

  await launch();

  const signal = (sig: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} is not running`);
    }
    child.kill(sig);
  };

  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    logs: () => output,
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    async restart(overrides = {}) {
      await terminate('SIGTERM');
      opts = { ...opts, ...overrides };
      child = await spawnOnce(port);
    },
    async destroy() {
      await terminate('SIGTERM');
      if (ownDir) {
        rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      }
    },
  };
}
