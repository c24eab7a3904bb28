import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniquePrefix } from '../../../../tests/support/redis.ts';
import { buildOpenApiDocument } from '../docs/openapi.ts';
import { startEventsApp } from '../events/events-test-app.ts';

const KEYS = { a: 'tenant-a-key-0123456789', b: 'tenant-b-key-0123456789' };
const auth = { authorization: `Bearer ${KEYS.a}` };
const UNKNOWN = { job: 'job_01J00000000000000000000000', schedule: 'sch_01J00000000000000000000000' };

describe('the routes the OpenAPI document describes, against the whole app (real Redis, live events on)', () => {
  let app: Awaited<ReturnType<typeof startEventsApp>>;
  beforeAll(async () => {
    app = await startEventsApp(uniquePrefix(), KEYS, {});
  });
  afterAll(async () => {
    await app.close();
  });

  const call = (method: string, path: string, headers: Record<string, string> = auth) =>
    fetch(`${app.base}${path}`, {
      method,
      headers: { ...headers, 'content-type': 'application/json' },
      ...(method === 'POST' || method === 'PATCH' ? { body: '{}' } : {}),
    });

  it('when each method the document gives a path is asked for, then a route of the app answers it', async () => {
    const paths = (buildOpenApiDocument() as { paths: Record<string, Record<string, unknown>> }).paths;
    const asked: string[] = [];
    for (const [template, operations] of Object.entries(paths)) {
      const path = template.replace('{id}', template.startsWith('/v1/schedules') ? UNKNOWN.schedule : UNKNOWN.job);
      for (const method of Object.keys(operations)) {
        const res = await call(method.toUpperCase(), path);
        const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
        // Unknown ids and empty bodies are refused, but by the route: never "no route", never 405.
        expect(res.status, `${method} ${path}`).not.toBe(405);
        expect(body?.error?.message ?? '', `${method} ${path}`).not.toMatch(/^no route/);
        asked.push(`${method} ${template}`);
      }
    }
    expect(asked).toEqual(
      expect.arrayContaining(['get /v1/jobs/{id}/events', 'post /v1/jobs', 'patch /v1/schedules/{id}']),
    );
  });

  it('when a served path is asked with a method it does not take, then it answers 405 with the Allow the router gives OPTIONS; an unknown path stays 404', async () => {
    const put = await call('PUT', '/v1/jobs');
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD, POST');
    expect(await put.json()).toEqual({
      error: { code: 'method_not_allowed', message: 'PUT is not allowed on /v1/jobs; use GET, HEAD, POST' },
    });
    const result = await call('DELETE', `/v1/jobs/${UNKNOWN.job}/result/`);
    expect(result.status).toBe(405);
    expect(result.headers.get('allow')).toBe('GET, HEAD');
    expect((await call('POST', '/healthz', {})).status).toBe(405);
    // The operators' paths the document does not describe (it is one of them) answer the same.
    for (const path of ['/metrics', '/openapi.json', '/docs', '/docs/init.js']) {
      const res = await call('POST', path, {});
      expect(res.status, path).toBe(405);
      expect(res.headers.get('allow'), path).toBe('GET, HEAD');
      expect(res.headers.get('x-request-id'), path).toBeTruthy();
    }
    // The router answers OPTIONS itself, with the same list.
    const options = await call('OPTIONS', `/v1/schedules/${UNKNOWN.schedule}`);
    expect(options.headers.get('allow')).toBe('DELETE, GET, HEAD, PATCH');
    expect((await call('POST', `/v1/schedules/${UNKNOWN.schedule}`)).headers.get('allow')).toBe(
      'DELETE, GET, HEAD, PATCH',
    );
    // The API key is checked first: without one, a wrong method is a 401 like any other.
    expect((await call('PUT', '/v1/jobs', {})).status).toBe(401);
    expect((await call('PUT', '/v1/nothing')).status).toBe(404);
    expect((await call('PUT', '/v1/jobs/a/b/c')).status).toBe(404);
  });
});
