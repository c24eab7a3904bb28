// Preloaded into a worker by its test (NODE_OPTIONS=--import): SIGUSR2 throws an uncaught exception
// and SIGWINCH leaves a rejection unhandled, each carrying a marker where ioredis puts command
// arguments, so the test can check the crash log leaves it out.
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const fault = (message) =>
    Object.assign(new Error(message), { command: { name: 'set', args: ['JOB-DATA-MARKER-7f3a'] } });
  process.on('SIGUSR2', () => {
    throw fault('injected uncaught exception');
  });
  process.on('SIGWINCH', () => {
    void Promise.reject(fault('injected unhandled rejection'));
  });
}
