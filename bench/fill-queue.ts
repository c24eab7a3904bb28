// Adds plain jobs to a queue and exits: started by bench/compare.ts as
// `node bench/dist/fill-queue.js <redis> <prefix> <queue> <count>`, so that a backlog's garbage
// (100,000 Job objects) stays out of the process that then generates the load.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const [url = '', prefix = '', name = '', count = '0'] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: 1 });
const queue = new Queue(name, { connection, prefix });
const total = Number(count);
for (let added = 0; added < total; added += 1_000) {
  await queue.addBulk(
    Array.from({ length: Math.min(1_000, total - added) }, () => ({
      name: 'simulate',
      data: { tenant: 'x', input: {} },
    })),
  );
}
await queue.close();
await connection.quit();
