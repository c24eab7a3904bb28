import { analyses, ERROR_CODES, jobViewSchema, scheduleViewSchema } from '@longhaul/shared';
import { z } from 'zod';
import type { ServedPath } from '../http/method-not-allowed.ts';
import { childrenQuerySchema, listQuerySchema, submitBodySchema } from '../jobs/schemas.ts';
import { createScheduleBodySchema, listSchedulesQuerySchema, updateScheduleBodySchema } from '../schedules/schemas.ts';

/** `{ error: { code, message, details? } }`: every error the API answers. */
export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES),
      message: z.string(),
      details: z.unknown().optional().describe('Field-level problems for a 400; the job view for a 409.'),
    }),
  })
  .meta({ id: 'Error' });

const jobListSchema = z
  .object({
    jobs: z.array(jobViewSchema),
    nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one.'),
  })
  .meta({ id: 'JobList' });

const childListSchema = z
  .object({
    children: z
      .array(jobViewSchema)
      .describe("Each child's view (with `parentId`), in the order the job started them."),
    nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one.'),
  })
  .meta({ id: 'ChildList' });

const jobResultSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    completedAt: z.string().nullable(),
    expiresAt: z.string().nullable(),
    result: z.unknown().describe("The analysis' result; see GET /v1/analyses for its JSON Schema."),
  })
  .meta({ id: 'JobResult' });

const scheduleListSchema = z
  .object({
    schedules: z.array(scheduleViewSchema).describe('Oldest first.'),
    nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one.'),
  })
  .meta({ id: 'ScheduleList' });

const analysisListSchema = z
  .object({
    analyses: z.array(
      z.object({
        name: z.string(),
        summary: z.string(),
        steps: z.array(z.string()),
        defaults: z.object({ attempts: z.number().int(), backoffMs: z.number().int(), timeoutMs: z.number().int() }),
        input: z.record(z.string(), z.unknown()).describe('JSON Schema of the input.'),
        result: z.record(z.string(), z.unknown()).describe('JSON Schema of the result.'),
      }),
    ),
  })
  .meta({ id: 'AnalysisList' });

const pascal = (name: string) => name.replace(/(^|-)([a-z0-9])/g, (_m, _d, c: string) => c.toUpperCase());

/** zod → JSON Schema 2020-12 (OpenAPI 3.1's own dialect), named schemas as component refs. */
function componentSchemas(
  entries: { id: string; schema: z.ZodType; io: 'input' | 'output' }[],
): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const io of ['input', 'output'] as const) {
    const registry = z.registry<{ id: string }>();
    for (const e of entries) if (e.io === io) registry.add(e.schema, { id: e.id });
    const { schemas } = z.toJSONSchema(registry, {
      io,
      target: 'draft-2020-12',
      unrepresentable: 'any',
      uri: (id) => `#/components/schemas/${id}`,
    });
    for (const [id, schema] of Object.entries(schemas)) {
      const { $schema: _dialect, $id: _id, id: _legacyId, ...rest } = schema as Record<string, unknown>;
      if (id === SHARED) {
        // Named schemas used inside the registered ones (StepView, ChildCounts…) land in zod's
        // `__shared` document, referred to as `…/__shared#/$defs/X`: a URI with two fragments,
        // which no resolver reads. They become components of their own.
        for (const [defId, def] of Object.entries((rest.$defs ?? {}) as Record<string, Record<string, unknown>>)) {
          out[defId] ??= def;
        }
      } else out[id] = rest;
    }
  }
  return pointSharedRefsAtComponents(out) as Record<string, Record<string, unknown>>;
}

const SHARED = '__shared';
const SHARED_REF = `#/components/schemas/${SHARED}#/$defs/`;

/** Rewrites every `$ref` into zod's `__shared` document to the component it became. */
function pointSharedRefsAtComponents(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(pointSharedRefsAtComponents);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] =
      key === '$ref' && typeof value === 'string' && value.startsWith(SHARED_REF)
        ? `#/components/schemas/${value.slice(SHARED_REF.length)}`
        : pointSharedRefsAtComponents(value);
  }
  return out;
}

const json = (ref: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });
const error = (description: string, headers?: Record<string, unknown>) => ({
  description,
  content: json('Error'),
  ...(headers ? { headers } : {}),
});
const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
const jobId = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'A job id as returned on submit (`job_` and a ULID), or a run of a schedule (`repeat:sch_…:<due ms>`).',
  schema: { type: 'string', pattern: '^(job_[0-9A-HJKMNP-TV-Z]{26}|repeat:sch_[0-9A-HJKMNP-TV-Z]{26}:[0-9]{13})$' },
};
const scheduleId = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'A schedule id as returned on create (`sch_` and a ULID).',
  schema: { type: 'string', pattern: '^sch_[0-9A-HJKMNP-TV-Z]{26}$' },
};
const common = {
  '401': error('Missing or invalid API key.'),
  '503': error('Redis is unreachable; answered within a second.', retryAfter),
};

/** Query parameters of a route, from the same schema the route validates with. */
function queryParameters(querySchema: z.ZodType) {
  const schema = z.toJSONSchema(querySchema, { io: 'input', unrepresentable: 'any' }) as {
    properties: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(schema.properties).map(([name, s]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    schema: s,
  }));
}

/**
 * The OpenAPI 3.1 document of the v1 API, generated from the zod schemas the API validates with
 * (request body, query, analysis inputs) and answers with (job view), so it cannot drift from them.
 */
export function buildOpenApiDocument(version = '0.1.0'): Record<string, unknown> {
  const analysisInputs = Object.values(analyses).map((a) => ({
    id: `${pascal(a.name)}Input`,
    schema: a.input as z.ZodType,
    io: 'input' as const,
  }));
  const schemas = componentSchemas([
    { id: 'SubmitJob', schema: submitBodySchema, io: 'input' },
    ...analysisInputs,
    { id: 'JobView', schema: jobViewSchema, io: 'output' },
    { id: 'JobList', schema: jobListSchema, io: 'output' },
    { id: 'ChildList', schema: childListSchema, io: 'output' },
    { id: 'JobResult', schema: jobResultSchema, io: 'output' },
    { id: 'AnalysisList', schema: analysisListSchema, io: 'output' },
    { id: 'CreateSchedule', schema: createScheduleBodySchema, io: 'input' },
    { id: 'UpdateSchedule', schema: updateScheduleBodySchema, io: 'input' },
    { id: 'ScheduleView', schema: scheduleViewSchema, io: 'output' },
    { id: 'ScheduleList', schema: scheduleListSchema, io: 'output' },
    { id: 'Error', schema: errorBodySchema, io: 'output' },
  ]);
  const inputList = analysisInputs.map((a) => `\`${a.id}\``).join(', ');
  return {
    openapi: '3.1.0',
    info: {
      title: 'longhaul API',
      version,
      description:
        'Long-running analysis jobs behind an HTTP API. Submit a job, poll it, fetch its result for 24 hours. ' +
        'Every error is `{ "error": { "code", "message", "details"? } }` and every response carries `X-Request-Id`.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [{ name: 'jobs' }, { name: 'schedules' }, { name: 'analyses' }, { name: 'health' }],
    paths: {
      '/v1/jobs': {
        post: {
          tags: ['jobs'],
          operationId: 'submitJob',
          summary: 'Submit a job',
          description: `The \`input\` is validated against the analysis' own schema: ${inputList}.`,
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description: 'A replay with the same key and body answers 200 with the same job.',
              schema: { type: 'string', minLength: 1, maxLength: 255 },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { $ref: '#/components/schemas/SubmitJob' },
                example: { type: 'simulate', input: { durationMs: 5000, steps: 5 } },
              },
            },
          },
          responses: {
            '200': {
              description: 'Idempotent replay: the job first submitted with this key.',
              content: json('JobView'),
            },
            '202': {
              description: 'Accepted: the job is in Redis.',
              headers: { Location: { description: 'The job URL.', schema: { type: 'string' } } },
              content: json('JobView'),
            },
            '400': error('Unknown analysis or invalid input, with field details.'),
            ...common,
            '409': error('The Idempotency-Key was used with another body.'),
            '410': error(
              'A replay of this Idempotency-Key: the job it made has been removed after the retention period.',
            ),
            '413': error('The body is larger than the configured limit.'),
            '415': error('The body is not JSON.'),
            '429': error('Tenant rate, backlog quota or storage budget exceeded.', retryAfter),
          },
        },
        get: {
          tags: ['jobs'],
          operationId: 'listJobs',
          summary: "The tenant's jobs, newest first",
          parameters: queryParameters(listQuerySchema),
          responses: {
            '200': { description: 'A page of jobs.', content: json('JobList') },
            '400': error('Bad query.'),
            '404': error('`schedule` names no schedule of this tenant, nor one it deleted whose runs are still kept.'),
            ...common,
          },
        },
      },
      '/v1/jobs/{id}': {
        get: {
          tags: ['jobs'],
          operationId: 'getJob',
          summary: 'The job view',
          parameters: [jobId],
          responses: {
            '200': { description: 'The job.', content: json('JobView') },
            '404': error('No such job for this tenant.'),
            '410': error('Retention removed the job.'),
            ...common,
          },
        },
        delete: {
          tags: ['jobs'],
          operationId: 'cancelJob',
          summary: 'Cancel a job',
          description:
            'The job is flagged cancelled: a queued or delayed one is failed as `cancelled` by the next free worker without running; an active one is aborted by its worker.',
          parameters: [jobId],
          responses: {
            '202': { description: 'Cancel accepted.', content: json('JobView') },
            '404': error('No such job for this tenant.'),
            '409': error('The job has already finished.'),
            '410': error('Retention removed the job.'),
            ...common,
          },
        },
      },
      '/v1/jobs/{id}/result': {
        get: {
          tags: ['jobs'],
          operationId: 'getJobResult',
          summary: "The job's result",
          parameters: [jobId],
          responses: {
            '200': { description: 'The result.', content: json('JobResult') },
            '404': error('No such job for this tenant.'),
            '409': error('The job has not completed; `details` is the job view.'),
            '410': error('Retention removed the job.'),
            ...common,
          },
        },
      },
      '/v1/jobs/{id}/events': {
        get: {
          tags: ['jobs'],
          operationId: 'streamJobEvents',
          summary: "The job's live events (Server-Sent Events)",
          description:
            'A `text/event-stream`. The first event, `snapshot`, is the job view now (`JobView`), so nothing is missed between a read and a subscribe. Then `status` (`{ id, status }`: `active`, `queued`, or `delayed` on a retry) and `progress` (`{ id, status, progress, etaSeconds }`), each with an `id:`. Last, one `completed`, `failed` or `cancelled` with the final job view, after which the server ends the stream; a job already finished gets its snapshot and that final event at once. A `: heartbeat` comment keeps an idle stream open. The snapshot carries an `id:` too, the events-stream position it covers. Reconnect with `Last-Event-ID` to resume: the fresh snapshot covers the events missed since that id, so only a final one among them is sent again, never older progress; when the missed events can no longer be checked, a `reset` event (`{ id, reason, message, lastEventId }`) says so, after the snapshot, which is still the current state.',
          parameters: [
            jobId,
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description:
                'The `id:` of the last event received: the stream resumes after it (the snapshot covers what was missed).',
              schema: { type: 'string', pattern: '^[0-9]+-[0-9]+$' },
            },
          ],
          responses: {
            '200': {
              description: 'The stream of events.',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '404': error('No such job for this tenant.'),
            '410': error('Retention removed the job.'),
            '429': error(
              'This tenant, or this API process, holds as many open event streams as it allows.',
              retryAfter,
            ),
            ...common,
          },
        },
      },
      '/v1/jobs/{id}/children': {
        get: {
          tags: ['jobs'],
          operationId: 'listJobChildren',
          summary: "A job's children (fan-out), paged",
          description:
            'The child jobs an analysis started with `ctx.spawn`, in the order it started them, each with its view. ' +
            'The parent view counts them by status (`children`); a child removed by retention is no longer listed.',
          parameters: [jobId, ...queryParameters(childrenQuerySchema)],
          responses: {
            '200': { description: 'A page of children.', content: json('ChildList') },
            '400': error('Bad query.'),
            '404': error('No such job for this tenant.'),
            '410': error('Retention removed the job.'),
            ...common,
          },
        },
      },
      '/v1/schedules': {
        post: {
          tags: ['schedules'],
          operationId: 'createSchedule',
          summary: 'Create a recurring analysis',
          description:
            'Give `cron` (with `timezone`) or `everyMs`. Each run is an ordinary job of the tenant with ' +
            '`scheduleId`, listed with `GET /v1/jobs?schedule=`. `webhook` is refused on schedules.',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { $ref: '#/components/schemas/CreateSchedule' },
                example: { type: 'simulate', input: { durationMs: 5000 }, cron: '0 2 * * *', timezone: 'Europe/Paris' },
              },
            },
          },
          responses: {
            '201': {
              description: 'Created: BullMQ holds its job scheduler.',
              headers: { Location: { description: 'The schedule URL.', schema: { type: 'string' } } },
              content: json('ScheduleView'),
            },
            '400': error('Unknown analysis, invalid input or timing (field details, e.g. `cron.hour`), or a webhook.'),
            ...common,
            '413': error('The body is larger than the configured limit.'),
            '415': error('The body is not JSON.'),
            '429': error('The tenant has as many schedules as SCHEDULES_PER_TENANT.', retryAfter),
          },
        },
        get: {
          tags: ['schedules'],
          operationId: 'listSchedules',
          summary: "The tenant's schedules",
          description: 'Oldest first, a page at a time (100 by default: the default SCHEDULES_PER_TENANT).',
          parameters: queryParameters(listSchedulesQuerySchema),
          responses: {
            '200': { description: 'A page of schedules.', content: json('ScheduleList') },
            '400': error('Bad query.'),
            ...common,
          },
        },
      },
      '/v1/schedules/{id}': {
        get: {
          tags: ['schedules'],
          operationId: 'getSchedule',
          summary: 'The schedule view',
          parameters: [scheduleId],
          responses: {
            '200': { description: 'The schedule.', content: json('ScheduleView') },
            '404': error('No such schedule for this tenant.'),
            ...common,
          },
        },
        patch: {
          tags: ['schedules'],
          operationId: 'updateSchedule',
          summary: 'Pause or resume, retime, change the input',
          parameters: [scheduleId],
          requestBody: { required: true, content: json('UpdateSchedule') },
          responses: {
            '200': { description: 'The schedule as changed.', content: json('ScheduleView') },
            '400': error('Invalid input or timing.'),
            '404': error('No such schedule for this tenant.'),
            '413': error('The body is larger than the configured limit.'),
            '415': error('The body is not JSON.'),
            ...common,
          },
        },
        delete: {
          tags: ['schedules'],
          operationId: 'deleteSchedule',
          summary: 'Delete a schedule',
          description: 'Its scheduler and next, not yet due, run are removed; runs already made stay readable.',
          parameters: [scheduleId],
          responses: {
            '200': { description: 'Deleted; its last view.', content: json('ScheduleView') },
            '404': error('No such schedule for this tenant.'),
            ...common,
          },
        },
      },
      '/v1/analyses': {
        get: {
          tags: ['analyses'],
          operationId: 'listAnalyses',
          summary: 'The analyses with their input and result JSON Schemas',
          responses: { '200': { description: 'The analyses.', content: json('AnalysisList') }, '401': common['401'] },
        },
      },
      '/healthz': {
        get: {
          tags: ['health'],
          operationId: 'liveness',
          security: [],
          summary: 'Liveness',
          responses: { '200': { description: 'The process is up.' } },
        },
      },
      '/readyz': {
        get: {
          tags: ['health'],
          operationId: 'readiness',
          security: [],
          summary: 'Readiness: Redis reachable, maxmemory-policy',
          description:
            'Anyone gets `{ status }`; the checks and warnings (Redis error text, policy) only with `Authorization: Bearer <METRICS_TOKEN>`.',
          responses: {
            '200': { description: 'Ready.' },
            '503': { description: 'Not ready (reasons for the metrics token holder).' },
          },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key from API_KEYS.' } },
      schemas,
    },
  };
}

/** Each path `document` describes, with its methods: any other method on one answers 405. */
export function documentedPaths(document: Record<string, unknown>): ServedPath[] {
  return Object.entries(document.paths as Record<string, Record<string, unknown>>).map(([path, operations]) => ({
    path,
    methods: Object.keys(operations),
  }));
}
