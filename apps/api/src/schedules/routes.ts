import { isScheduleId } from '@longhaul/shared';
import { Router } from 'express';
import { tenantOf } from '../http/auth.ts';
import { HttpError, notFound } from '../http/http-error.ts';
import type { Deadline } from '../jobs/routes.ts';
import { issuesToDetails, parseQuery } from '../jobs/schemas.ts';
import type { ScheduleService } from './schedule-service.ts';
import { createScheduleBodySchema, listSchedulesQuerySchema, updateScheduleBodySchema } from './schemas.ts';

/** A schedule id from the path, refused before it reaches Redis when it cannot be one of ours. */
function scheduleIdParam(raw: string | string[] | undefined): string {
  const id = Array.isArray(raw) ? raw[0] : raw;
  if (!id || !isScheduleId(id)) throw notFound('schedule');
  return id;
}

function requireJson(is: string | false | null): void {
  if (!is) {
    throw new HttpError(415, 'unsupported_media_type', 'send the schedule as JSON with Content-Type: application/json');
  }
}

export function scheduleRoutes(schedules: ScheduleService, deadline: Deadline): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    requireJson(req.is('application/json'));
    const body = createScheduleBodySchema.safeParse(req.body);
    if (!body.success) {
      throw new HttpError(
        400,
        'validation_failed',
        'the request body is not a valid schedule',
        issuesToDetails(body.error),
      );
    }
    const view = await deadline(schedules.create(tenantOf(req), body.data));
    res.location(view.links.self);
    res.status(201).json(view);
  });

  router.get('/', async (req, res) => {
    res.json(await deadline(schedules.list(tenantOf(req), parseQuery(listSchedulesQuerySchema, req.query))));
  });

  router.get('/:id', async (req, res) => {
    res.json(await deadline(schedules.get(tenantOf(req), scheduleIdParam(req.params.id))));
  });

  router.patch('/:id', async (req, res) => {
    const id = scheduleIdParam(req.params.id);
    requireJson(req.is('application/json'));
    const body = updateScheduleBodySchema.safeParse(req.body);
    if (!body.success) {
      throw new HttpError(
        400,
        'validation_failed',
        'the request body is not a valid change',
        issuesToDetails(body.error),
      );
    }
    res.json(await deadline(schedules.update(tenantOf(req), id, body.data)));
  });

  router.delete('/:id', async (req, res) => {
    res.json(await deadline(schedules.remove(tenantOf(req), scheduleIdParam(req.params.id))));
  });

  return router;
}
