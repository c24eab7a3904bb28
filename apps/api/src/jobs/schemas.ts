import { analysisNames, isJobId, isScheduleId } from '@longhaul/shared';
import { z } from 'zod';
import { HttpError } from '../http/http-error.ts';

/** The `type` and `input` fields of a job or a schedule: checked against the analysis afterwards. */
export const analysisFields = {
  type: z
    .string()
    .min(1)
    .max(100)
    .describe(`The analysis to run: ${analysisNames.join(', ')}.`),
  input: z.unknown().describe("The analysis' input; see GET /v1/analyses for its JSON Schema."),
};

/** `POST /v1/jobs` body. The input is checked against the analysis' own schema afterwards. */
export const submitBodySchema = z
  .object({
    ...analysisFields,
    priority: z.number().int().min(1).max(1000).optional().describe('1 runs first, 1000 last; 500 when not given.'),
    delayMs: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400_000)
      .optional()
      .describe('Run no earlier than this many milliseconds from now.'),
    webhook: z
      .object({ url: z.url({ protocol: /^https?$/ }).max(2048) })
      .strict()
      .optional()
      .describe('POSTed the job view when the job completes, fails or is cancelled.'),
  })
  .strict()
  .meta({ id: 'SubmitJob' });

export type SubmitBody = z.infer<typeof submitBodySchema>;

/**
 * The `cursor` and `limit` of a listing's query, shared by every paged route: a cursor that
 * `isCursor` accepts (a page's `nextCursor`), and 1 to 100 items, `defaultLimit` when not given.
 */
export function pageFields(isCursor: (cursor: string) => boolean, defaultLimit: number) {
  return {
    cursor: z.string().max(100).refine(isCursor, 'not a cursor from a previous page').optional(),
    limit: z.coerce
      .number({ error: 'must be a whole number from 1 to 100' })
      .int()
      .min(1)
      .max(100)
      .default(defaultLimit),
  };
}

export const listQuerySchema = z
  .object({
    status: z.enum(['queued', 'delayed', 'active', 'completed', 'failed', 'cancelled']).optional(),
    type: z.string().max(100).optional(),
    schedule: z
      .string()
      .refine(isScheduleId, 'not a schedule id')
      .optional()
      .describe(
        "A schedule's runs, newest first, also for a while after it was deleted (until retention removes them). " +
          'Runs are listed only this way: without `schedule`, the list holds the jobs submitted with POST /v1/jobs.',
      ),
    ...pageFields(isJobId, 20),
  })
  .strict();

export type ListQuery = z.infer<typeof listQuerySchema>;

/** `GET /v1/jobs/:id/children` query: a page of a parent's children, in the order it started them. */
export const childrenQuerySchema = z.object(pageFields(isJobId, 20)).strict();

export type ChildrenQuery = z.infer<typeof childrenQuerySchema>;

/**
 * A route's query, parsed by `schema`; 400 `validation_failed` naming each bad field otherwise. A
 * parameter given twice (`?limit=1&limit=2`) is refused as such: every parameter here takes one value.
 */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.infer<S> {
  const repeated = Object.entries((query ?? {}) as Record<string, unknown>)
    .filter(([, value]) => Array.isArray(value))
    .map(([path]) => ({ path, message: 'given more than once: give it once' }));
  if (repeated.length > 0) throw new HttpError(400, 'validation_failed', 'invalid query', repeated);
  const parsed = schema.safeParse(query);
  if (!parsed.success) {
    throw new HttpError(400, 'validation_failed', 'invalid query', issuesToDetails(parsed.error, undefined, 'query'));
  }
  return parsed.data;
}

/**
 * zod issues → `details` of a 400: where, and what is wrong there, in words a caller can act on
 * (an unknown field is named, a missing one is "required").
 */
export function issuesToDetails(
  error: z.ZodError,
  root?: string,
  where: 'body' | 'query' = 'body',
): { path: string; message: string }[] {
  const pathOf = (path: readonly PropertyKey[]) =>
    [root, ...path.map(String)].filter(Boolean).join('.') || `(${where})`;
  return error.issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') {
      const message = where === 'query' ? 'not a parameter of this route' : 'not a field of this request';
      return i.keys.map((key) => ({ path: pathOf([...i.path, key]), message }));
    }
    if (i.code === 'invalid_type' && i.message.endsWith('received undefined')) {
      // zod says "expected nonoptional" of a field that takes any value (`input`).
      const what = i.expected === 'nonoptional' ? '' : ` (${i.expected})`;
      return [{ path: pathOf(i.path), message: `required${what}` }];
    }
    return [{ path: pathOf(i.path), message: i.message }];
  });
}
