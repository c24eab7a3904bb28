import { Worker } from 'node:worker_threads';

// Plain JS, evaluated in the thread: no loader needed, whatever runs the worker (tsx or a bundle).
const BURN = `
const { parentPort, workerData } = require('node:worker_threads');
const end = Date.now() + workerData.ms;
let x = 0;
while (Date.now() < end) { for (let i = 0; i < 10000; i++) x = (x * 31 + i) % 1000003; }
parentPort.postMessage(x);
`;

/**
 * Keeps one core busy for `ms` in a worker thread, so the worker's event loop (lock renewal,
 * progress, cancel messages) stays free. Ends the thread early when `signal` aborts.
 */
export function burnCpu(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const thread = new Worker(BURN, { eval: true, workerData: { ms } });
    const onAbort = () => void thread.terminate();
    signal.addEventListener('abort', onAbort, { once: true });
    thread.once('message', () => resolve());
    thread.once('error', reject);
    thread.once('exit', () => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) reject(signal.reason);
      else resolve();
    });
  });
}
