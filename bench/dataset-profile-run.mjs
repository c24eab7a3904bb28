/**
 * Child process of bench/dataset-profile-csv.ts, run with plain `node` (no tsx): streams a file
 * into the production build's profile thread (apps/worker/dist/dataset-profile-thread.js) the way
 * the worker does (512 KiB messages, at most 4 unparsed), and prints one JSON line with the wall
 * and CPU time, the summary's row count and this process's peak RSS.
 *
 * argv: <thread entry> <csv path> <profile options as JSON>
 */
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';

const [entry, path, optionsJson] = process.argv.slice(2);

/**
 * CPU seconds of the busiest thread other than the main one: the profile thread (Linux only,
 * from /proc; clock ticks of 1/100 s). `null` where /proc is not there.
 */
function profileThreadCpuSeconds() {
  try {
    let most = 0;
    for (const task of readdirSync('/proc/self/task')) {
      if (Number(task) === process.pid) continue;
      try {
        const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        most = Math.max(most, Number(fields[11]) + Number(fields[12]));
      } catch {
        // the task ended while we looked
      }
    }
    return most / 100;
  } catch {
    return null;
  }
}

const IN_FLIGHT = 4;
const thread = new Worker(resolve(entry), {
  workerData: { options: JSON.parse(optionsJson), restored: undefined, checkpointMs: 10_000 },
});
let inFlight = 0;
let wake = null;
let checkpoints = 0;
const done = new Promise((resolve, reject) => {
  thread.on('message', (message) => {
    if (message.type === 'ack') {
      inFlight--;
      wake?.();
    } else if (message.type === 'checkpoint') checkpoints++;
    else if (message.type === 'done') resolve(message.summary);
    else if (message.type === 'error') reject(new Error(message.message));
  });
  thread.on('error', reject);
});
const cpuBefore = process.cpuUsage();
const started = performance.now();
for await (const chunk of createReadStream(path, { highWaterMark: 512 * 1024 })) {
  while (inFlight >= IN_FLIGHT) await new Promise((resolve) => (wake = resolve));
  const copy = new Uint8Array(chunk);
  inFlight++;
  thread.postMessage({ type: 'chunk', data: copy }, [copy.buffer]);
}
thread.postMessage({ type: 'end' });
const summary = await done;
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
const threadCpuSeconds = profileThreadCpuSeconds();
await thread.terminate();
process.stdout.write(
  `${JSON.stringify({
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    threadCpuSeconds,
    bytes: summary.bytes,
    rows: summary.rowCount,
    parseErrors: summary.parseErrors.count,
    checkpoints,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    columns: summary.columns.map((c) => ({ name: c.name, type: c.type, nulls: c.nulls, distinct: c.distinct })),
  })}\n`,
);
