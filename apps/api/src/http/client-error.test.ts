import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { createLogger } from '@longhaul/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerClientErrors } from './client-error.ts';

/** Sends `raw` on a fresh connection and reads until the server closes it. */
async function exchange(port: number, raw: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(raw);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  await once(socket, 'close');
  return text;
}

function parse(text: string) {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = Object.fromEntries(
    headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) as unknown };
}

describe('requests the HTTP parser refuses', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end('ok'));
    answerClientErrors(server, createLogger({ name: 'test', level: 'silent', pretty: false }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('when the headers are larger than the limit, then it answers 431 in the API error shape, with X-Request-Id', async () => {
    const res = parse(await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Foo: ${'a'.repeat(100_000)}\r\n\r\n`));
    expect(res.status).toBe(431);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers.connection).toBe('close');
    expect(res.body).toEqual({ error: { code: 'headers_too_large', message: expect.stringContaining('headers') } });
  });

  it('when the request line is not HTTP, then it answers 400 in the API error shape', async () => {
    const res = parse(await exchange(port, 'HELLO THERE\r\n\r\n'));
    expect(res.status).toBe(400);
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(res.body).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
  });

  it('when a well-formed request follows on another connection, then the server still answers it', async () => {
    const text = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
  });
});
