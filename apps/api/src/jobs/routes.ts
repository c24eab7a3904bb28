import { FINAL_STATUSES, isJobId, type JobView } from '@longhaul/shared';
import { type Response, Router } from 'express';
import { tenantOf } from '../http/auth.ts';
import { HttpError, notFound } from '../http/http-error.ts';
import { childrenRoute } from './children-route.ts';
import { type JobService, RATE_WINDOW_MS, rateLimitHeaders } from './job-service.ts';
import { issuesToDetails, listQuerySchema, parseQuery, submitBodySchema } from './schemas.ts';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** A job id from the path, refused before it reaches Redis when it cannot be one of ours. */
function jobIdParam(raw: string | string[] | undefined): string {
  const id = Array.isArray(raw) ? raw[0] : raw;
  if (!id || !isJobId(id)) throw notFound();
  return id;
}

/** Bounds how long a use-case may wait on Redis (answers 503 past it). */
export type Deadline = <T>(work: Promise<T>) => Promise<T>;

/** Sends a completed job's result response (see result-stream.ts). */
export type SendResult = (res: Response, view: JobView) => Promise<void>;

export function jobRoutes(jobs: JobService, deadline: Deadline, sendResult: SendResult): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    if (!req.is('application/json')) {
      throw new HttpError(415, 'unsupported_media_type', 'send the job as JSON with Content-Type: application/json');
    }
    const body = submitBodySchema.safeParse(req.body);
    if (!body.success) {
      throw new HttpError(400, 'validation_failed', 'the request body is not a valid job', issuesToDetails(body.error));
    }
    const key = req.get('idempotency-key');
    // Node joins two header lines with ', ', as fetch and proxies join values (a key holds no space).
    if (key?.includes(', ')) throw new HttpError(400, 'bad_request', 'send one Idempotency-Key header, not several');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError(400, 'bad_request', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
    }
    const { view, replay, rate } = await deadline(jobs.submit(tenantOf(req), body.data, key));
    if (rate) res.set(rateLimitHeaders(rate, RATE_WINDOW_MS));
    res.location(view.links.self);
    res.status(replay ? 200 : 202).json(view);
  });

  router.get('/', async (req, res) => {
    res.json(await deadline(jobs.list(tenantOf(req), parseQuery(listQuerySchema, req.query))));
  });

  router.get('/:id', async (req, res) => {
    res.json(await deadline(jobs.get(tenantOf(req), jobIdParam(req.params.id))));
  });

  router.get('/:id/result', async (req, res) => {
    // The view first (tenant check, 404/410, status); the result is streamed without parsing it.
    const view = await deadline(jobs.get(tenantOf(req), jobIdParam(req.params.id)));
    if (view.status !== 'completed') {
      // Failed or cancelled: no result will ever come.
      const ended = FINAL_STATUSES.includes(view.status);
      throw new HttpError(
        409,
        'not_completed',
        ended
          ? `the job ${view.status === 'failed' ? 'failed' : 'was cancelled'}; it has no result`
          : `the job is ${view.status}; it has no result yet`,
        view,
      );
    }
    await sendResult(res, view);
  });

  const children = childrenRoute(jobs.children, deadline);
  router.get('/:id/children', async (req, res) => {
    await children(req, res, jobIdParam(req.params.id));
  });

  router.delete('/:id', async (req, res) => {
    res.status(202).json(await deadline(jobs.cancel(tenantOf(req), jobIdParam(req.params.id))));
  });

  return router;
}
