// A hand-written BullMQ worker, the baseline longhaul's worker is compared with: same queue, same
// concurrency, a processor that returns what a no-op `simulate` returns, nothing else.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [url = '', prefix = '', queue = '', concurrency = '1', resultBytes = '0'] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: null });
const payload = 'x'.repeat(Number(resultBytes));

const worker = new Worker(
  queue,
  async () => {
    return { steps: 1, attempt: 1, resumedFromStep: 0, elapsedMs: 0, payload };
  },
  { connection, prefix, concurrency: Number(concurrency) },
);
worker.on('error', () => undefined);
process.on('SIGTERM', () => {
  void worker.close().then(() => connection.quit().then(() => process.exit(0)));
});
process.send?.('ready');
