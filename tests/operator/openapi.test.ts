import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../apps/api/src/docs/openapi.ts';
import { submitBodySchema } from '../../apps/api/src/jobs/schemas.ts';
import { jobViewSchema } from '../../packages/shared/src/job-view.ts';

type Doc = {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

/** An Ajv holding every component of the document under the `$ref` that names it. */
function componentsAjv(doc: Doc): Ajv2020 {
  const ajv = new Ajv2020({ strict: false });
  for (const [id, schema] of Object.entries(doc.components.schemas)) {
    ajv.addSchema(schema, `#/components/schemas/${id}`);
  }
  return ajv;
}

describe('the OpenAPI document', () => {
  const document = buildOpenApiDocument();

  it('when run through an independent OpenAPI 3.1 validator, then it is valid', async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('when a body passes or fails the zod schema the API validates with, then it passes or fails the document too', () => {
    const doc = document as unknown as Doc;
    const ajv = componentsAjv(doc);
    const check = ajv.compile({ $ref: '#/components/schemas/SubmitJob' });
    const bodies: unknown[] = [
      { type: 'simulate', input: { durationMs: 10 } },
      { type: 'simulate', input: {}, priority: 1, delayMs: 0, webhook: { url: 'https://example.com/hook' } },
      { type: '', input: {} },
      { type: 'simulate', input: {}, priority: 0 },
      { type: 'simulate', input: {}, unknown: true },
      { input: {} },
    ];
    for (const body of bodies) {
      expect(check(body), JSON.stringify(body)).toBe(submitBodySchema.safeParse(body).success);
    }
  });

  it('when every $ref is followed, then it names a component of the document, and each component compiles', () => {
    const doc = document as unknown as Doc;
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]*)"/g)].map((m) => m[1] as string);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of new Set(refs)) {
      expect(ref, ref).toMatch(/^#\/components\/schemas\/[A-Za-z]+$/);
      expect(doc.components.schemas, ref).toHaveProperty(ref.slice('#/components/schemas/'.length));
    }
    const ajv = componentsAjv(doc);
    for (const id of Object.keys(doc.components.schemas)) {
      expect(() => ajv.compile({ $ref: `#/components/schemas/${id}` }), id).not.toThrow();
    }
  });

  it('when a job view with steps and children is checked against JobView, then it passes, and a broken one fails', () => {
    const doc = document as unknown as Doc;
    const ajv = componentsAjv(doc);
    const check = ajv.compile({ $ref: '#/components/schemas/JobView' });
    const at = '2026-12-07T12:00:00.000Z';
    const view = {
      id: 'job_01J0000000000000000000000A',
      type: 'simulate',
      status: 'active',
      progress: { percent: 50, step: 'running' },
      attempts: { made: 1, max: 3 },
      priority: 500,
      createdAt: at,
      startedAt: at,
      finishedAt: null,
      expiresAt: null,
      etaSeconds: null,
      error: null,
      links: { self: '/v1/jobs/x', result: '/v1/jobs/x/result', events: '/v1/jobs/x/events' },
      steps: [{ name: 'load', status: 'completed', attempt: 1, startedAt: at, finishedAt: at }],
      children: { total: 2, queued: 0, active: 1, completed: 1, failed: 0, cancelled: 0 },
    };
    expect(jobViewSchema.safeParse(view).success).toBe(true);
    expect(check(view), JSON.stringify(check.errors)).toBe(true);
    expect(check({ ...view, steps: [{ name: 'load', status: 'sleeping' }] })).toBe(false);
    expect(check({ ...view, children: { total: 'two' } })).toBe(false);
  });

  it('when read, then every v1 route the API serves is described, with its error answers', () => {
    const doc = document as unknown as Doc;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/jobs',
        '/v1/jobs/{id}',
        '/v1/jobs/{id}/result',
        '/v1/jobs/{id}/events',
        '/v1/jobs/{id}/children',
        '/v1/analyses',
        '/v1/schedules',
        '/v1/schedules/{id}',
        '/healthz',
        '/readyz',
      ]),
    );
    const submit = doc.paths['/v1/jobs']?.post as { responses: Record<string, unknown> };
    expect(Object.keys(submit.responses)).toEqual(
      expect.arrayContaining(['200', '202', '400', '401', '409', '413', '415', '429', '503']),
    );
    expect(doc.components.schemas).toHaveProperty('SimulateInput');
    expect(doc.components.schemas).toHaveProperty('JobView');
    expect(doc.components.schemas).toHaveProperty('Error');
    expect(Object.keys(doc.paths['/v1/schedules/{id}'] ?? {})).toEqual(['get', 'patch', 'delete']);
    expect(doc.components.schemas).toHaveProperty('ScheduleView');
    expect(doc.components.schemas).toHaveProperty('CreateSchedule');
  });

  it('when a jobs or schedules route answers 404, 413 or 415, then the document lists that answer', () => {
    const doc = document as unknown as Doc;
    const codes = (path: string, method: string) =>
      Object.keys((doc.paths[path]?.[method] as { responses?: Record<string, unknown> } | undefined)?.responses ?? {});
    // An unknown `schedule` filter answers 404.
    expect(codes('/v1/jobs', 'get')).toEqual(expect.arrayContaining(['200', '400', '401', '404', '503']));
    // The JSON body parser answers 413 and the routes 415 before a schedule is looked at.
    expect(codes('/v1/schedules', 'post')).toEqual(expect.arrayContaining(['201', '400', '413', '415', '429']));
    expect(codes('/v1/schedules/{id}', 'patch')).toEqual(expect.arrayContaining(['200', '400', '404', '413', '415']));
  });
});
