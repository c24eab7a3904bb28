import {
  createLogger,
  createRedisConnection,
  handleShutdown,
  type JobData,
  loadConfigOrExit,
  QUEUES,
  redactRedisUrl,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { createApp } from './app.ts';
import { createJobEventHub } from './events/job-event-hub.ts';

const config = loadConfigOrExit(process.env, 'api');
const log = createLogger({ name: 'longhaul-api', level: config.log.level, pretty: config.log.pretty });

// Commands already sent get a long timeout: a busy Redis is waited for. A down or silent one is
// told apart and answered 503 within a second (createApp's Redis liveness, REDIS_COMMAND_TIMEOUT_MS).
const SENT_COMMAND_TIMEOUT_MS = 5_000;
const redis = createRedisConnection(config.redisUrl, 'producer', {
  commandTimeoutMs: SENT_COMMAND_TIMEOUT_MS,
  name: 'longhaul-api',
});
let lastRedisError = '';
redis.on('error', (err: Error) => {
  // ioredis repeats the same error on every reconnect attempt: log each distinct one once.
  if (err.message !== lastRedisError) log.warn({ err: err.message }, 'redis connection error');
  lastRedisError = err.message;
});
redis.on('ready', () => {
  lastRedisError = '';
  log.info({ redis: redactRedisUrl(config.redisUrl) }, 'redis ready');
});

// skipVersionCheck + skipWaitingForReady: the queue sends nothing until asked, so an API started
// while Redis is down stays usable once Redis returns (BullMQ's start-up INFO would otherwise
// fail once and leave the queue's client rejected for good).
// The queue gets a connection of its own: BullMQ defines its Lua scripts on the connection it is
// given, and ioredis copies every defined script into each pipeline or MULTI it creates, which
// would make each of our own pipelined reads cost far more CPU than the read itself.
const queueConnection = createRedisConnection(config.redisUrl, 'producer', {
  commandTimeoutMs: SENT_COMMAND_TIMEOUT_MS,
  name: 'longhaul-api-queue',
});
queueConnection.on('error', () => undefined);
const queue = new Queue<JobData>(QUEUES.analyses, {
  connection: queueConnection,
  prefix: config.queuePrefix,
  streams: { events: { maxLen: config.eventsMaxLen } },
  skipVersionCheck: true,
  skipWaitingForReady: true,
});
queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));

// Live job events: one QueueEvents per process on a worker-role connection of its own (it blocks
// on XREAD, and waits out a Redis outage instead of failing), fanned out to every SSE stream.
const eventsConnection = createRedisConnection(config.redisUrl, 'worker', { name: 'longhaul-api-events' });
eventsConnection.on('error', () => undefined);
const events = createJobEventHub({ connection: eventsConnection, prefix: config.queuePrefix, log });

const app = createApp({ config, log, redis, queue, queueConnection, events });
const server = app.listen(config.port, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ port, env: config.env }, `longhaul api listening on http://localhost:${port}`);
});
server.keepAliveTimeout = 65_000;

handleShutdown({
  log,
  deadlineMs: 10_000,
  steps: [
    {
      name: 'stop accepting',
      run: () =>
        new Promise((resolve) => {
          server.close(() => resolve(undefined));
          // Open SSE streams would hold server.close() until the deadline: end them (clients reconnect elsewhere).
          events.endStreams();
        }),
    },
    { name: 'close job events', run: () => events.close() },
    { name: 'close queue', run: () => queue.close() },
    {
      name: 'quit redis',
      run: () => Promise.all([redis, queueConnection].map((c) => c.quit().catch(() => c.disconnect()))),
    },
  ],
});
