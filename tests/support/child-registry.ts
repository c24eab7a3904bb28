import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * Children and temp dirs started by the test harness. They are killed / removed when the test
 * process exits, however it exits, so a failed or interrupted run never leaves a redis-server or an
 * api process behind holding a port.
 */
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

function cleanupSync(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        // A frozen (SIGSTOPped) process still dies on SIGKILL.
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanupSync();
      // When nobody else handles the signal, keep its default meaning: terminate.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.once(signal, onSignal);
  }
}

/** Kill `child` with SIGKILL if it is still running when this process exits. */
export function trackChild(child: ChildProcess): void {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Remove `dir` (recursively) when this process exits, unless {@link untrackDir} is called first. */
export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}
