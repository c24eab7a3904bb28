import type { AddressInfo } from 'node:net';
import { analyses, createLogger, createRedisConnection, loadConfig, type RedisConnection } from '@longhaul/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../apps/api/src/app.ts';
import { type ApiServices, createApiServices } from '../../apps/api/src/services.ts';
import { type ApiResponse, request } from '../support/http.ts';
import { cleanupPrefix, redisUrl, uniquePrefix } from '../support/redis.ts';
import { chaosEnv, recordFigures, SECRETS, size } from './chaos-support.ts';

const RUNS = size(150, 2_000);
const BODY_LIMIT = 64 * 1024;

/** Every answer to hostile input: a 4xx with the one error body, or a success; never a 5xx. */
function expectClientAnswer(res: ApiResponse, what: string): void {
  if (res.status >= 500) throw new Error(`${what} answered ${res.status}: ${JSON.stringify(res.body)}`);
  expect(res.headers['x-request-id']).toBeTruthy();
  if (res.status >= 400) {
    expect(typeof res.body?.error?.code, `${what}: ${JSON.stringify(res.body)}`).toBe('string');
    expect(typeof res.body?.error?.message).toBe('string');
  }
}

describe('G11 hostile input against createApp (in-process, real Redis)', () => {
  const prefix = uniquePrefix();
  let redis: RedisConnection;
  let services: ApiServices;
  let base: string;
  let close: () => Promise<void>;
  const logLines: string[] = [];
  const statusCounts: Record<string, number> = {};
  const post = async (body: string | Uint8Array, headers: Record<string, string> = {}) => {
    const res = await request('POST', `${base}/v1/jobs`, {
      body,
      headers: { authorization: `Bearer ${SECRETS.keyA}`, 'content-type': 'application/json', ...headers },
    });
    statusCounts[res.status] = (statusCounts[res.status] ?? 0) + 1;
    return res;
  };

  beforeAll(async () => {
    const config = loadConfig({ ...chaosEnv(redisUrl(), prefix), BODY_LIMIT_BYTES: String(BODY_LIMIT) }, 'api');
    redis = createRedisConnection(config.redisUrl, 'producer', { commandTimeoutMs: 1_000 });
    redis.on('error', () => undefined);
    // The app's own logs, captured, to check that no input or key reaches them.
    // The services' own logger, written to memory.
    const log = createLogger(
      { name: 'hostile', level: 'debug', pretty: false },
      { write: (line: string) => logLines.push(line) },
    );
    services = createApiServices({ config, log, redis });
    const app = createApp({ config, log, redis, ...services });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    await close?.();
    await services?.close();
    await redis?.quit().catch(() => redis.disconnect());
    await cleanupPrefix(redisUrl(), prefix);
    recordFigures('G11', { propertyRuns: RUNS, answers: statusCounts });
  });

  it('G11: when POST /v1/jobs gets arbitrary JSON bodies, then it answers 4xx (or 202), never 5xx', async () => {
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          type: fc.oneof(fc.string(), fc.constantFrom(...Object.keys(analyses)), fc.jsonValue()),
          input: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.string(), fc.jsonValue()),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => expectClientAnswer(await post(JSON.stringify(b) ?? 'null'), 'json body')),
      { numRuns: RUNS },
    );
  });

  it('G11: when the body is not JSON, truncated, or mislabelled, then it answers 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `{"type":"simulate","input":${s}`),
          fc.uint8Array(),
        ),
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-16',
          'application/json; charset=latin1',
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/json; charset=',
        ),
        async (b, contentType) => expectClientAnswer(await post(b, { 'content-type': contentType }), 'raw body'),
      ),
      { numRuns: RUNS },
    );
  });

  it('G11: when headers are hostile (auth, Idempotency-Key, X-Request-Id, encodings), then it answers 4xx or 202', async () => {
    const visible = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            authorization: fc.oneof(
              visible,
              visible.map((s) => `Bearer ${s}`),
              fc.constant(`Bearer ${SECRETS.keyA}`),
            ),
            'idempotency-key': fc.oneof(visible, fc.constant('x'.repeat(300))),
            'x-request-id': visible,
            'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'compress', 'x-unknown'),
          },
          { requiredKeys: [] },
        ),
        async (headers) =>
          expectClientAnswer(
            await post(JSON.stringify({ type: 'simulate', input: { durationMs: 1, steps: 1 } }), headers),
            `headers ${JSON.stringify(headers)}`,
          ),
      ),
      { numRuns: RUNS },
    );
  });

  it('G11: when the body is larger than the limit, then it answers 413', async () => {
    const big = JSON.stringify({ type: 'simulate', input: { durationMs: 1, pad: 'x'.repeat(BODY_LIMIT) } });
    const res = await post(big);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('G11: when the JSON is deeply nested or huge within the limit, then it answers 4xx promptly and the API stays up', async () => {
    const depth = Math.floor(BODY_LIMIT / 2) - 100;
    const deepArray = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const deepObject = `${'{"a":'.repeat(Math.floor(BODY_LIMIT / 6))}1${'}'.repeat(Math.floor(BODY_LIMIT / 6))}`;
    const deepInput = `{"type":"simulate","input":${deepObject.slice(0, BODY_LIMIT - 200)}}`;
    const manyKeys = JSON.stringify({
      type: 'simulate',
      input: Object.fromEntries(Array.from({ length: 4_000 }, (_, i) => [`k${i}`, i])),
    });
    for (const [what, body, key] of [
      ['deep array', deepArray, undefined],
      ['deep object', deepObject, undefined],
      ['deep input (maybe truncated)', deepInput, undefined],
      ['deep input with an Idempotency-Key', `{"type":"simulate","input":${deepObject}}`, 'deep-1'],
      ['4000 keys', manyKeys, undefined],
    ] as const) {
      const res = await post(body, key ? { 'idempotency-key': key } : {});
      expectClientAnswer(res, what);
      expect(res.status, what).toBeGreaterThanOrEqual(400);
    }
    const health = await request('GET', `${base}/healthz`);
    expect(health.status).toBe(200);
  });

  it('G11: when a job id is hostile (":", "../", "%00", malformed escapes, 10 kB), then every route answers 400 or 404', async () => {
    const ids = [
      'job_01J:lh:meta',
      '..%2F..%2Fadmin',
      '../../admin',
      'job_%00',
      '%00',
      '%',
      '%E0%A4%A',
      '%FF',
      'job_01ARZ3NDEKTSV4RRFFQ69G5FAV%2500',
      'x'.repeat(10_000),
      `job_${'Z'.repeat(10_000)}`,
      '*',
      '{lh-test}:analyses:1',
      '1',
    ];
    // `.` and `..` stay as they are once encoded, and every HTTP client resolves them as dot
    // segments before sending (`/v1/jobs/.` is `/v1/jobs/`, the list): they name no job id.
    const arbitrary = fc
      .sample(fc.string({ minLength: 1, maxLength: 200 }).map(encodeURIComponent), size(50, 500))
      .filter((id) => id !== '.' && id !== '..');
    for (const id of [...ids, ...arbitrary]) {
      for (const [method, path] of [
        ['GET', `/v1/jobs/${id}`],
        ['GET', `/v1/jobs/${id}/result`],
        ['GET', `/v1/jobs/${id}/events`],
        ['DELETE', `/v1/jobs/${id}`],
        ['GET', `/v1/jobs?cursor=${id}`],
      ] as const) {
        const res = await request(method, `${base}${path}`, {
          headers: { authorization: `Bearer ${SECRETS.keyA}` },
          timeoutMs: 5_000,
        });
        expectClientAnswer(res, `${method} ${path.slice(0, 80)}`);
        expect([400, 404], `${method} ${path.slice(0, 80)}`).toContain(res.status);
      }
    }
  });

  for (const [name, contract] of Object.entries(analyses)) {
    it(`G11: when the "${name}" input is fuzzed (each field given any JSON), then it answers 202 or 400, never 5xx`, async () => {
      // Field names from the analysis' own JSON Schema, so each field gets values of every type.
      const schema = z.toJSONSchema(contract.input, { io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, unknown>;
      };
      const fields = Object.keys(schema.properties ?? {});
      const field = fields.length > 0 ? fc.oneof(fc.constantFrom(...fields), fc.string()) : fc.string();
      const value = fc.oneof(
        fc.jsonValue(),
        fc.integer(),
        fc.double({ noNaN: true }),
        fc.constantFrom(-1, 0, 1, 2 ** 53, -(2 ** 53), 1e308, '', 'x'.repeat(5_000), SECRETS.inputMarker),
      );
      const input = fc.oneof(fc.dictionary(field, value, { maxKeys: fields.length + 2 }), fc.jsonValue());
      const seen: Record<string, number> = {};
      await fc.assert(
        fc.asyncProperty(input, async (i) => {
          const res = await post(JSON.stringify({ type: name, input: i, delayMs: 86_400_000 }));
          seen[res.status] = (seen[res.status] ?? 0) + 1;
          expectClientAnswer(res, `${name} input ${JSON.stringify(i).slice(0, 200)}`);
          expect([202, 400, 429]).toContain(res.status);
          if (res.status === 400) expect(res.body.error.details).toBeDefined();
        }),
        { numRuns: RUNS },
      );
      // The fuzzer must reach validation failures, else it proves nothing.
      expect(seen[400] ?? 0).toBeGreaterThan(0);
    });
  }

  it('G12: when hostile input was logged, then no API key or input value appears in the logs', () => {
    const all = logLines.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(SECRETS.keyA);
    expect(all).not.toContain(SECRETS.inputMarker);
  });
});
