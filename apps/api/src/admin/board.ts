import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { type Config, QUEUES } from '@longhaul/shared';
import type { Queue } from 'bullmq';
import { Router } from 'express';
import { basicAuth } from './basic-auth.ts';
import { formatJobData, formatReturnValue } from './job-formatter.ts';

/** Same-origin only; the board's own inline bootstrap script and styles are allowed. */
const BOARD_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Where the board is mounted on the API. */
export const BOARD_PATH = '/admin/queues';

export interface BoardDeps {
  /** Credentials and read-only switch; `null` keeps the board closed (every request 401). */
  admin: Config['admin'];
  queues: Queue[];
  /** Largest JSON shown for a job's data or result. @defaultValue 2048 */
  maxChars?: number;
}

/** What each queue holds, as the board shows it. */
const QUEUE_DESCRIPTIONS: Record<string, string> = {
  [QUEUES.analyses]: 'Analysis jobs; the job name is the analysis.',
  [QUEUES.webhooks]:
    "Webhook deliveries; each is the parent of the analysis job it reports (id: the job's, then .webhook).",
};

/**
 * Bull Board at {@link BOARD_PATH}, behind HTTP basic auth. Read-only unless the config says
 * otherwise (`ADMIN_READONLY=false` allows retry, clean, promote). It reuses the API's queue and
 * so its producer connection: while Redis is down the board's API calls fail fast too.
 */
export function adminBoard({ admin, queues, maxChars = 2048 }: BoardDeps): Router {
  const readOnly = admin?.readOnly ?? true;
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  const adapters = queues.map((queue) => {
    const adapter = new BullMQAdapter(queue, {
      readOnlyMode: readOnly,
      allowRetries: !readOnly,
      description: QUEUE_DESCRIPTIONS[queue.name] ?? '',
    });
    adapter.setFormatter('data', (data: unknown) => formatJobData(data, { maxChars }));
    adapter.setFormatter('returnValue', (value: unknown) => formatReturnValue(value, { maxChars }));
    return adapter;
  });
  createBullBoard({
    queues: adapters,
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'longhaul',
        miscLinks: [{ text: 'API docs', url: '/docs' }],
      },
    },
  });
  const router = Router();
  router.use(basicAuth(admin ? { user: admin.user, password: admin.password } : null));
  router.use((_req, res, next) => {
    // The board's page asks Google Fonts for its typeface: block that (and anything else off-site)
    // so an operator's browser talks to this API only and the board works without internet.
    res.set('Content-Security-Policy', BOARD_CSP);
    next();
  });
  router.use(serverAdapter.getRouter());
  return router;
}
