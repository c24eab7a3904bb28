import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { DatasetError } from './dataset-error.ts';
import { type OpenedSource, openUrl, type SourceLimits } from './dataset-source.ts';

// Servers that misbehave the way a hostile or broken dataset host does. Every case must end in an
// error the job can act on (a DatasetError fails the job at once, a plain Error is retried) or in
// the right bytes, never in a crash: an uncaught exception here fails the whole test file.

const limits: SourceLimits = {
  maxBytes: 1 << 20,
  fetchTimeoutMs: 2_000,
  fetchTotalMs: 60_000,
  maxRedirects: 3,
  allowPrivate: true,
};

const opened: Server[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(opened.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(server: Server): Promise<string> {
  opened.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // The client hangs up on these servers on purpose (limits, cancels): a write after that
    // fails with ECONNRESET/EPIPE on the server's side, which is expected here, not a test error.
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A server that writes raw bytes: what it does after the request line is up to `answer`. */
function rawServer(answer: (socket: Socket) => void): Promise<string> {
  return listen(createNetServer((socket) => socket.once('data', () => answer(socket))));
}

function httpServer(handler: RequestListener): Promise<string> {
  return listen(createHttpServer(handler));
}

const head = (headers: Record<string, string | number>) =>
  `HTTP/1.1 200 OK\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

const open = (url: string, over: Partial<SourceLimits> = {}, signal = new AbortController().signal) =>
  openUrl(url, 0, undefined, { limits: { ...limits, ...over }, signal });

/** Reads like a slow consumer: one chunk per turn of the event loop. */
async function readSlowly(source: OpenedSource): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of source.chunks) {
    parts.push(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(parts);
}

/** Byte equality without vitest's per-element diff, which is slow on megabytes. */
function expectBytes(got: Buffer, want: Buffer): void {
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
}

const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => 97 + (i % 26)));

describe('hostile dataset servers', () => {
  it('G14: when the server closes the socket (FIN) while the body is paused by a slow consumer, then the whole body is read', async () => {
    // undici 7 crashed the process here (nodejs/undici#5360): the whole body fits the first socket
    // read, the reader does not read yet, the parser pauses, and the FIN reaches the paused parser.
    for (const size of [64 * 1024, 256 * 1024, 1024 * 1024]) {
      const body = bytes(size);
      let flushed!: () => void;
      const sent = new Promise<void>((resolve) => {
        flushed = resolve;
      });
      const url = await rawServer((socket) => {
        socket.write(head({ 'content-length': size, connection: 'close' }));
        socket.end(body, flushed);
      });
      const source = await open(`${url}/data.csv`);
      await sent;
      await sleep(50); // lets the FIN arrive before the first read; not a timing assertion
      expectBytes(await readSlowly(source), body);
    }
  });

  it('when the server closes with FIN before sending its Content-Length, then the fetch fails with a retryable error', async () => {
    const url = await rawServer((socket) => {
      socket.write(head({ 'content-length': 1024 * 1024, connection: 'close' }));
      socket.end(bytes(100 * 1024));
    });
    const source = await open(`${url}/short.csv`);
    await sleep(50);
    const err = await readSlowly(source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(/connection closed before the whole body arrived/);
  });

  it('when the server sends more bytes than its Content-Length, then exactly Content-Length bytes are read', async () => {
    const body = bytes(5000);
    const url = await rawServer((socket) => {
      socket.write(head({ 'content-length': 1000 }));
      socket.write(body);
      socket.write('garbage after the body\r\n\r\nHTTP/9 nonsense\r\n\r\n');
    });
    const source = await open(`${url}/long.csv`);
    expect(source.total).toBe(1000);
    expectBytes(await readSlowly(source), body.subarray(0, 1000));
  });

  it('when Content-Length announces more than the size limit, then the fetch fails permanently before reading', async () => {
    const url = await rawServer((socket) => socket.write(head({ 'content-length': 10 * 1024 ** 3 })));
    await expect(open(`${url}/big.csv`)).rejects.toThrow(
      new DatasetError(`the dataset is larger than the ${1 << 20}-byte limit (DATASET_MAX_BYTES)`),
    );
  });

  it('when the server trickles bytes slower than the total limit allows, then the fetch fails with a retryable error', async () => {
    const url = await rawServer((socket) => {
      socket.write(head({ 'transfer-encoding': 'chunked' }));
      // One byte every 20 ms: never idle long enough for the idle timeout, never done.
      const timer = setInterval(() => socket.write('1\r\nx\r\n'), 20);
      socket.on('close', () => clearInterval(timer));
    });
    const source = await open(`${url}/trickle.csv`, { fetchTotalMs: 400 });
    const err = await readSlowly(source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(
      /longer than its 400 ms limit \(DATASET_FETCH_TOTAL_MS\); a retry, while attempts remain, resumes/,
    );
  });

  it('when the server holds its headers back past the total limit, then the fetch fails with a retryable error', async () => {
    const url = await rawServer(() => undefined);
    const err = await open(`${url}/silent.csv`, { fetchTotalMs: 300, fetchTimeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(/DATASET_FETCH_TOTAL_MS/);
  });

  it('when the server trickles a small body within the limits, then every byte arrives', async () => {
    const body = bytes(40);
    const url = await rawServer((socket) => {
      socket.write(head({ 'content-length': body.length }));
      let at = 0;
      const timer = setInterval(() => {
        socket.write(body.subarray(at, at + 1));
        if (++at === body.length) clearInterval(timer);
      }, 5);
      socket.on('close', () => clearInterval(timer));
    });
    expectBytes(await readSlowly(await open(`${url}/slow.csv`)), body);
  });

  it('when a compressed body expands past the size limit (a gzip, deflate or br bomb), then the fetch fails permanently', async () => {
    const zeros = Buffer.alloc(32 * 1024 * 1024);
    const bombs = { gzip: gzipSync(zeros), deflate: deflateSync(zeros), br: brotliCompressSync(zeros) };
    for (const [encoding, bomb] of Object.entries(bombs)) {
      expect(bomb.length).toBeLessThan(limits.maxBytes);
      const url = await httpServer((_req, res) => {
        res.writeHead(200, { 'content-encoding': encoding, 'content-length': bomb.length });
        res.end(bomb);
      });
      const source = await open(`${url}/bomb.csv`);
      expect(source.total, encoding).toBeNull();
      await expect(readSlowly(source), encoding).rejects.toThrow(
        new DatasetError(`the dataset is larger than the ${1 << 20}-byte limit (DATASET_MAX_BYTES)`),
      );
    }
  });

  it('when the server compresses although identity was asked for, then the body is decompressed', async () => {
    const csv = Buffer.from('a,b\n1,2\n3,4\n');
    const url = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/csv' });
      res.end(gzipSync(csv));
    });
    expectBytes(await readSlowly(await open(`${url}/data.csv`)), csv);
  });

  it('when the compressed body is corrupt or the encoding unknown, then the fetch fails permanently', async () => {
    const url = await httpServer((req, res) => {
      res.writeHead(200, { 'content-encoding': req.url === '/corrupt.csv' ? 'gzip' : 'zstd-but-not-really' });
      res.end(Buffer.from('this is not gzip at all, not even close'));
    });
    await expect(readSlowly(await open(`${url}/corrupt.csv`))).rejects.toThrow(
      /the dataset's Content-Encoding is corrupt/,
    );
    await expect(readSlowly(await open(`${url}/corrupt.csv`))).rejects.toBeInstanceOf(DatasetError);
    await expect(open(`${url}/unknown.csv`)).rejects.toThrow(
      new DatasetError('the dataset URL answered with an unsupported Content-Encoding (zstd-but-not-really)'),
    );
  });

  it('when the server redirects in a loop, then the fetch fails permanently after the redirect limit', async () => {
    let requests = 0;
    const url = await httpServer((req, res) => {
      requests++;
      res.writeHead(302, { location: req.url === '/a' ? '/b' : '/a' });
      res.end();
    });
    await expect(open(`${url}/a`)).rejects.toThrow(new DatasetError('the dataset URL redirected more than 3 times'));
    expect(requests).toBe(4);
  });

  it('when the job is cancelled while the body is read, then the fetch stops with the cancel reason', async () => {
    const url = await rawServer((socket) => {
      socket.write(head({ 'transfer-encoding': 'chunked' }));
      const timer = setInterval(() => socket.write('1\r\nx\r\n'), 10);
      socket.on('close', () => clearInterval(timer));
    });
    const cancel = new AbortController();
    const source = await open(`${url}/endless.csv`, {}, cancel.signal);
    const reading = readSlowly(source);
    cancel.abort(new Error('cancelled by the client'));
    await expect(reading).rejects.toThrow('cancelled by the client');
  });
});
