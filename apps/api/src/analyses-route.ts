import { analyses } from '@longhaul/shared';
import { Router } from 'express';
import { z } from 'zod';

/** `GET /v1/analyses`: every registered analysis with its input and result JSON Schemas. */
export function analysesRoutes(): Router {
  const body = {
    analyses: Object.values(analyses).map((a) => ({
      name: a.name,
      summary: a.summary,
      steps: a.steps,
      defaults: a.defaults,
      input: z.toJSONSchema(a.input, { io: 'input', unrepresentable: 'any' }),
      result: z.toJSONSchema(a.result, { io: 'output', unrepresentable: 'any' }),
    })),
  };
  const router = Router();
  router.get('/', (_req, res) => {
    res.json(body);
  });
  return router;
}
