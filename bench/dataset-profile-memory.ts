/**
 * `pnpm bench:profile`: profiles a dataset of BENCH_PROFILE_GB gigabytes (default 1), generated on
 * the fly and streamed from a local HTTP server (never written to disk), through a real API and
 * worker process on a private redis-server. Reports rows, throughput and the worker's peak RSS
 * (VmHWM from /proc), against the bound stated in docs/dataset-profile.md.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { api } from '../tests/support/http.ts';
import { startApi, startWorker } from '../tests/support/processes.ts';
import { startRedisServer } from '../tests/support/redis-server.ts';

const GB = Number(process.env.BENCH_PROFILE_GB ?? 1);
const TARGET_BYTES = Math.round(GB * 1024 ** 3);
const KEY = 'bench-tenant-key-0000000';

const HEADER = 'id,user,amount,created_at,category,active,note\n';
/** ~70-byte rows: a unique id, 2M users (HyperLogLog), a skewed amount (sketch), dates, 50 categories. */
const rowOf = (i: number) => {
  const amount = ((i * 2654435761) % 1_000_003) / 100;
  const day = String(1 + (i % 28)).padStart(2, '0');
  return `${i},u${(i * 7919) % 2_000_000},${amount},2024-03-${day}T12:${String(i % 60).padStart(2, '0')}:00Z,cat${i % 50},${i % 7 === 0},"n ""${i % 1000}"""\n`;
};

let rowsServed = 0;
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/csv' });
  res.write(HEADER);
  let sent = HEADER.length;
  let i = 0;
  const pump = () => {
    while (sent < TARGET_BYTES && !res.destroyed) {
      const parts: string[] = [];
      for (let n = 0; n < 2000; n++) parts.push(rowOf(i++));
      const chunk = parts.join('');
      sent += Buffer.byteLength(chunk);
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    rowsServed = i;
    res.end();
  };
  pump();
  req.on('close', () => res.destroy());
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const datasetUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/data.csv`;

const redis = await startRedisServer();
const env = {
  REDIS_URL: redis.url,
  QUEUE_PREFIX: '{bench-profile}',
  API_KEYS: `bench:${KEY}`,
  DATASET_ALLOW_PRIVATE: 'true',
  LOG_LEVEL: 'warn',
};
const [apiProcess, worker] = await Promise.all([startApi(env), startWorker(env)]);
const rss = (field: 'VmRSS' | 'VmHWM') => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${worker.pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
};
const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;
const idleRss = rss('VmRSS');

try {
  const client = api(apiProcess.url, KEY);
  const started = Date.now();
  const res = await client.post('/v1/jobs', { type: 'dataset-profile', input: { source: { url: datasetUrl } } });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${JSON.stringify(res.body)}`);
  const id = res.body.id as string;
  let status = 'queued';
  while (status !== 'completed' && status !== 'failed') {
    await sleep(5000);
    const view = (await client.get(`/v1/jobs/${id}`)).body;
    status = view.status;
    console.log(
      `${((Date.now() - started) / 1000).toFixed(0)} s  ${view.progress?.step ?? '-'}  ${view.progress?.message ?? ''}  rss ${mib(rss('VmRSS'))}`,
    );
  }
  const seconds = (Date.now() - started) / 1000;
  const result = (await client.get(`/v1/jobs/${id}/result`)).body.result;
  if (status !== 'completed') throw new Error(`the profile failed: ${JSON.stringify(result)}`);
  const lines = [
    `dataset:     ${mib(result.bytes)} (${(result.bytes / 1024 ** 3).toFixed(2)} GiB), ${result.rowCount} rows (served ${rowsServed}), ${result.columns.length} columns`,
    `time:        ${seconds.toFixed(0)} s, ${(result.bytes / 1e6 / seconds).toFixed(1)} MB/s`,
    `worker RSS:  idle ${mib(idleRss)}, peak ${mib(rss('VmHWM'))} (VmHWM, main thread + profile thread)`,
    `distinct:    ${result.columns.map((c: { name: string; distinct: { value: number } }) => `${c.name}=${c.distinct.value}`).join(' ')}`,
  ];
  console.log(`\n${lines.join('\n')}`);
} finally {
  await Promise.allSettled([apiProcess.stop(), worker.stop()]);
  await redis.destroy();
  server.closeAllConnections();
  server.close();
}
