import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenedRange, openRange, type SourceLimits } from './dataset-source.ts';
import { serveLocally } from './test-support.ts';

const DATA = Buffer.from(Array.from({ length: 3000 }, (_, i) => `${i},${i * 2}\n`).join(''));

/** Answers `bytes=a-b` on /data.csv properly, and misbehaves in one way on each other path. */
function route(req: IncomingMessage, res: ServerResponse): void {
  const range = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
  const from = Number(range?.[1] ?? 0);
  const to = Math.min(Number(range?.[2] ?? DATA.length - 1), DATA.length - 1);
  const body = DATA.subarray(from, to + 1);
  const partial = (contentRange: string, extra: Record<string, string> = {}) =>
    res.writeHead(206, { etag: '"v1"', 'content-range': contentRange, ...extra });
  switch (req.url) {
    case '/data.csv':
      partial(`bytes ${from}-${to}/${DATA.length}`);
      return void res.end(body);
    case '/ignores':
      res.writeHead(200, { 'content-length': DATA.length });
      return void res.end(DATA);
    case '/unknown-size':
      partial(`bytes ${from}-${to}/*`);
      return void res.end(body);
    case '/other-range':
      partial(`bytes ${from + 1}-${to}/${DATA.length}`);
      return void res.end(body.subarray(1));
    case '/changed':
      partial(`bytes ${from}-${to}/${DATA.length}`, { etag: '"v2"' });
      return void res.end(body);
    case '/compressed':
      partial(`bytes ${from}-${to}/${DATA.length}`, { 'content-encoding': 'gzip' });
      return void res.end(body);
    case '/oversends':
      // Chunked, no Content-Length: HTTP framing does not stop the extra bytes, the reader must.
      partial(`bytes ${from}-${to}/${DATA.length}`, { 'transfer-encoding': 'chunked' });
      res.write(body);
      return void res.end(DATA.subarray(0, 5000));
    case '/short':
      partial(`bytes ${from}-${to}/${DATA.length}`, { 'transfer-encoding': 'chunked' });
      return void res.end(body.subarray(0, 10));
    default:
      res.writeHead(404);
      res.end();
  }
}

let server: Awaited<ReturnType<typeof serveLocally>>;
let base: string;
const limits: SourceLimits = {
  maxBytes: 1 << 20,
  fetchTimeoutMs: 2_000,
  fetchTotalMs: 10_000,
  maxRedirects: 2,
  allowPrivate: true,
};
const signal = new AbortController().signal;

beforeAll(async () => {
  server = await serveLocally(route);
  base = server.base;
});
afterAll(() => server.close());

async function read(opened: OpenedRange): Promise<Buffer> {
  if (!opened.ranged) throw new Error(opened.reason);
  const parts: Uint8Array[] = [];
  for await (const chunk of opened.chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

const open = (path: string, start: number, end: number, expected?: { etag?: string; length?: number }) =>
  openRange(`${base}${path}`, start, end, expected, { limits, signal });

describe('a byte range of a dataset URL', () => {
  it('when the server answers the range, then exactly those bytes come through with the size', async () => {
    const opened = await open('/data.csv', 100, 5000);
    expect(opened).toMatchObject({
      ranged: true,
      total: DATA.length,
      validator: { etag: '"v1"', length: DATA.length },
    });
    expect(await read(opened)).toEqual(DATA.subarray(100, 5000));
    // Past the end of the file, the server cuts the range there.
    expect(await read(await open('/data.csv', DATA.length - 10, DATA.length + 100))).toEqual(DATA.subarray(-10));
  });

  it('when the server ignores ranges, hides the size, answers another range or compresses, then no range is given', async () => {
    expect(await open('/ignores', 0, 100)).toEqual({ ranged: false, reason: 'its server ignores Range requests' });
    expect(await open('/unknown-size', 0, 100)).toMatchObject({ ranged: false, reason: /size/ });
    expect(await open('/other-range', 10, 100)).toMatchObject({ ranged: false, reason: /a range other/ });
    expect(await open('/compressed', 0, 100)).toMatchObject({ ranged: false, reason: /compresses/ });
  });

  it('when the dataset changed since the split was planned, then no range is given', async () => {
    const expected = { etag: '"v1"', length: DATA.length };
    expect(await open('/changed', 0, 100, expected)).toMatchObject({ ranged: false, reason: /changed/ });
    expect(await open('/data.csv', 0, 100, { ...expected, length: 5 })).toMatchObject({ ranged: false });
    expect((await open('/data.csv', 0, 100, expected)).ranged).toBe(true);
  });

  it('when the server sends more or fewer bytes than the range, then reading it fails', async () => {
    await expect(read(await open('/oversends', 0, 1000))).rejects.toThrow(/more bytes than the range/);
    await expect(read(await open('/short', 0, 1000))).rejects.toThrow(/closed before the whole range arrived/);
  });
});
