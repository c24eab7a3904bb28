import type { Logger } from 'pino';

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown> | unknown;
}

export interface ShutdownOptions {
  log: Logger;
  /** Run in order on SIGTERM or SIGINT. */
  steps: ShutdownStep[];
  /** The whole shutdown is cut short, and the process exits 1, past this. */
  deadlineMs: number;
  exit?: (code: number) => void;
}

/**
 * A signal this soon after the first is the same one delivered again, not a second: a terminal's
 * Ctrl-C reaches every process of its group, and pnpm relays it to its script as well, so an app
 * under `pnpm start:worker` gets it two or three times. scripts/start.ts reads it too.
 */
export const REPEAT_WINDOW_MS = 2_000;

/**
 * One shutdown for both apps: on the first SIGTERM/SIGINT run every step in order (stop accepting,
 * drain, close queues, quit Redis), each step's failure logged and the next still run, then exit 0.
 * A second signal ({@link REPEAT_WINDOW_MS} or more after the first), or the deadline, exits at
 * once. The listeners stay: with none, a repeated SIGINT would kill the process mid-drain.
 */
export function handleShutdown({ log, steps, deadlineMs, exit = process.exit }: ShutdownOptions): () => Promise<void> {
  let running: Promise<void> | null = null;
  let startedAt = 0;
  const shutdown = (signal: string): Promise<void> => {
    if (running) {
      if (Date.now() - startedAt < REPEAT_WINDOW_MS) return running;
      log.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return running;
    }
    startedAt = Date.now();
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ deadlineMs }, 'shutdown deadline passed: exiting');
      exit(1);
    }, deadlineMs);
    timer.unref();
    running = (async () => {
      for (const step of steps) {
        try {
          await step.run();
          log.debug({ step: step.name }, 'shutdown step done');
        } catch (err) {
          log.error({ err, step: step.name }, 'shutdown step failed');
        }
      }
      clearTimeout(timer);
      log.info('shut down cleanly');
      exit(0);
    })();
    return running;
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  return () => shutdown('manual');
}
