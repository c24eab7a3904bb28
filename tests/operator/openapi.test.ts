import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../apps/api/src/docs/openapi.ts';
import { submitBodySchema } from '../../apps/api/src/jobs/schemas.ts';

type Doc = {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

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
    const ajv = new Ajv2020({ strict: false });
    for (const [id, schema] of Object.entries(doc.components.schemas)) {
      ajv.addSchema(schema, `#/components/schemas/${id}`);
    }
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
});
