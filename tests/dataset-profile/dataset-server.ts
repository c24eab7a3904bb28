import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Row `i` of the generated dataset: `id,value,group,flag`. */
export const rowOf = (i: number) => `${i},${(i * 7919) % 10007},g${i % 13},${i % 3 === 0}\n`;
export const HEADER = 'id,value,group,flag\n';

/** A generated CSV of `rows` rows, in memory (for Range requests). */
export function generatedCsv(rows: number): Buffer {
  const parts = [HEADER];
  for (let i = 0; i < rows; i++) parts.push(rowOf(i));
  return Buffer.from(parts.join(''));
}

export interface DatasetServerOptions {
  /** Served at /data.csv with Range support (`bytes=a-` and `bytes=a-b`) and an ETag. */
  data?: Buffer;
  /** Bytes per second for /data.csv (default: as fast as the socket takes them). */
  bytesPerSecond?: number;
  /** Rows streamed, generated on the fly, at /stream.csv (no Content-Length, no Range). */
  streamRows?: number;
  /**
   * Keep streaming /stream.csv past `streamRows` until this long after the request (ms), so a test
   * that needs a long profile gets one however fast the profiler is; `streamed()` says how many rows.
   */
  streamMinMs?: number;
}

/** A local HTTP server on 127.0.0.1 that serves test datasets, so workers need DATASET_ALLOW_PRIVATE=true. */
export async function startDatasetServer(options: DatasetServerOptions) {
  let streamed = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/data.csv' && options.data) {
      const data = options.data;
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      const from = range ? Number(range[1]) : 0;
      const last = range?.[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      const headers = { etag: '"fixed"', 'content-type': 'text/csv' };
      if (range) {
        res.writeHead(206, {
          ...headers,
          'content-range': `bytes ${from}-${last}/${data.length}`,
          'content-length': last + 1 - from,
        });
      } else {
        res.writeHead(200, { ...headers, 'content-length': data.length });
      }
      const step = 64 * 1024;
      const delay = options.bytesPerSecond ? (step / options.bytesPerSecond) * 1000 : 0;
      let at = from;
      const pump = () => {
        if (res.destroyed) return;
        if (at > last) return void res.end();
        const chunk = data.subarray(at, Math.min(at + step, last + 1));
        at += chunk.length;
        if (delay > 0) {
          res.write(chunk);
          setTimeout(pump, delay);
        } else if (res.write(chunk)) setImmediate(pump);
        else res.once('drain', pump);
      };
      pump();
      return;
    }
    if (req.url === '/stream.csv' && options.streamRows) {
      const until = Date.now() + (options.streamMinMs ?? 0);
      const more = (i: number) => i < (options.streamRows as number) || Date.now() < until;
      res.writeHead(200, { 'content-type': 'text/csv' });
      res.write(HEADER);
      let i = 0;
      const pump = () => {
        while (more(i) && !res.destroyed) {
          const parts: string[] = [];
          for (const end = i + 2000; i < end; i++) parts.push(rowOf(i));
          streamed = i;
          if (!res.write(parts.join(''))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    /** Rows the last /stream.csv response held. */
    streamed: () => streamed,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
