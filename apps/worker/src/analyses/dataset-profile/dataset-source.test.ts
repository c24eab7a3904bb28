import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from './dataset-error.ts';
import { type OpenedSource, openUrl, type SourceLimits } from './dataset-source.ts';
import { serveLocally } from './test-support.ts';

const DATA = Buffer.from(`a,b\n${Array.from({ length: 2000 }, (_, i) => `${i},${i * 2}`).join('\n')}\n`);

function route(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/';
  if (path === '/data.csv' || path === '/no-range.csv') {
    const range = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    res.setHeader('etag', '"v1"');
    res.setHeader('content-type', 'text/csv');
    if (range && path === '/data.csv') {
      const from = Number(range[1]);
      res.writeHead(206, { 'content-range': `bytes ${from}-${DATA.length - 1}/${DATA.length}` });
      res.end(DATA.subarray(from));
      return;
    }
    res.end(DATA);
    return;
  }
  if (path === '/slow') return; // never answers
  if (path === '/stalls') {
    res.writeHead(200);
    res.write('a,b\n1,2\n'); // then nothing more
    return;
  }
  if (path === '/huge') {
    res.writeHead(200); // no Content-Length: the cap is enforced while streaming
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const pump = () => {
      while (res.write(chunk)) {}
      res.once('drain', pump);
    };
    pump();
    req.on('close', () => res.destroy());
    return;
  }
  const hop = /^\/redirect\/(\d+)$/.exec(path);
  if (hop) {
    const n = Number(hop[1]);
    res.writeHead(302, { location: n > 0 ? `/redirect/${n - 1}` : '/data.csv' });
    res.end();
    return;
  }
  if (path === '/gone') {
    res.writeHead(404);
    res.end('nope');
    return;
  }
  res.writeHead(503);
  res.end();
}

let server: Awaited<ReturnType<typeof serveLocally>>;
let base: string;
const limits: SourceLimits = {
  maxBytes: 1 << 20,
  fetchTimeoutMs: 500,
  fetchTotalMs: 60_000,
  maxRedirects: 3,
  allowPrivate: true,
};
const signal = new AbortController().signal;

beforeAll(async () => {
  server = await serveLocally(route);
  base = server.base;
});
afterAll(() => server.close());

async function readAll(source: OpenedSource): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source.chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

const open = (path: string, from = 0, over: Partial<SourceLimits> = {}, validator?: { etag?: string }) =>
  openUrl(`${base}${path}`, from, validator, { limits: { ...limits, ...over }, signal });

describe('dataset URLs', () => {
  it('when a URL serves a CSV, then its bytes, size and format hint come through', async () => {
    const source = await open('/data.csv');
    expect(source.total).toBe(DATA.length);
    expect(source.formatHint).toBe('csv');
    expect(await readAll(source)).toEqual(DATA);
  });

  it('when resuming, then a Range request continues at the offset, or the bytes before it are skipped', async () => {
    const ranged = await open('/data.csv', 1000, {}, { etag: '"v1"' });
    expect(ranged.offset).toBe(1000);
    expect(await readAll(ranged)).toEqual(DATA.subarray(1000));
    const skipped = await open('/no-range.csv', 1000, {}, { etag: '"v1"' });
    expect(skipped.offset).toBe(1000);
    expect(await readAll(skipped)).toEqual(DATA.subarray(1000));
    const changed = await open('/no-range.csv', 1000, {}, { etag: '"v0"' });
    expect(changed.offset).toBe(0);
  });

  it('when redirects stay within the limit, then they are followed; past it, it fails permanently', async () => {
    expect(await readAll(await open('/redirect/2'))).toEqual(DATA);
    await expect(open('/redirect/5')).rejects.toThrow(new DatasetError('the dataset URL redirected more than 3 times'));
  });

  it('when the server does not answer or stops sending, then it fails as a retryable timeout', async () => {
    const silent = open('/slow');
    await expect(silent).rejects.toThrow(/did not answer or stopped sending for 500 ms/);
    await expect(silent).rejects.not.toBeInstanceOf(DatasetError);
    await expect(readAll(await open('/stalls'))).rejects.toThrow(/stopped sending/);
  });

  it('when the dataset is larger than the limit, then it fails permanently, with or without Content-Length', async () => {
    await expect(open('/data.csv', 0, { maxBytes: 100 })).rejects.toThrow(/larger than the 100-byte limit/);
    await expect(readAll(await open('/huge'))).rejects.toThrow(
      new DatasetError(`the dataset is larger than the ${1 << 20}-byte limit (DATASET_MAX_BYTES)`),
    );
  });

  it('when the server answers 404, then it fails permanently; 503, then it is retried', async () => {
    await expect(open('/gone')).rejects.toThrow(new DatasetError('the dataset URL answered HTTP 404'));
    const busy = open('/busy');
    await expect(busy).rejects.toThrow(/HTTP 503 \(retried while attempts remain\)/);
    await expect(busy).rejects.not.toBeInstanceOf(DatasetError);
  });

  it('when private addresses are not allowed, then loopback URLs are refused before any request', async () => {
    const go = (url: string) => openUrl(url, 0, undefined, { limits: { ...limits, allowPrivate: false }, signal });
    await expect(go(`${base}/data.csv`)).rejects.toThrow(
      /refused: the URL resolves to a private, loopback or other non-public address, which is not allowed \(DATASET_ALLOW_PRIVATE is off\)$/,
    );
    await expect(go(`${base}/data.csv`)).rejects.not.toThrow(/127\.0\.0\.1/);
    const port = new URL(base).port;
    await expect(go(`http://localhost:${port}/data.csv`)).rejects.toBeInstanceOf(DatasetError);
    await expect(go('ftp://example.com/x.csv')).rejects.toThrow(/only http and https/);
  });
});
