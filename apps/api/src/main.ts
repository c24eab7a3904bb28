import { startTelemetry, tracingEnabled } from '@longhaul/shared/telemetry';

// Tracing starts first, and everything else is imported after it: the instrumentations patch
// express and ioredis as they load, which a static import would do before this line runs.
const telemetry = await startTelemetry({ serviceName: 'longhaul-api', enabled: tracingEnabled(process.env) });
const { createLogger, createRedisConnection, handleShutdown, loadConfigOrExit, redactRedisUrl } = await import(
  '@longhaul/shared'
);
const { createApp } = await import('./app.ts');
const { answerClientErrors } = await import('./http/client-error.ts');
const { createJobEventHub } = await import('./events/job-event-hub.ts');
const { createApiServices } = await import('./services.ts');

const config = loadConfigOrExit(process.env, 'api');
const log = createLogger({
  name: 'longhaul-api',
  level: config.log.level,
  pretty: config.log.pretty,
  traceIds: telemetry.enabled,
});

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

// The queues get a connection of their own: BullMQ defines its Lua scripts on the connection it is
// given, and ioredis copies every defined script into each pipeline or MULTI it creates, which
// would make each of our own pipelined reads cost far more CPU than the read itself.
const queueConnection = createRedisConnection(config.redisUrl, 'producer', {
  commandTimeoutMs: SENT_COMMAND_TIMEOUT_MS,
  name: 'longhaul-api-queue',
});
queueConnection.on('error', () => undefined);
const services = createApiServices({ config, log, redis, queueConnection });

// Live job events: one QueueEvents per process while any SSE stream is open, on a worker-role
// connection of its own (it blocks on XREAD, and waits out a Redis outage instead of failing),
// fanned out to every stream.
const eventsConnection = createRedisConnection(config.redisUrl, 'worker', { name: 'longhaul-api-events' });
eventsConnection.on('error', () => undefined);
const events = createJobEventHub({ connection: eventsConnection, prefix: config.queuePrefix, log });

const app = createApp({ config, log, redis, ...services, events });
const server = app.listen(config.port, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ port, env: config.env }, `longhaul api listening on http://localhost:${port}`);
});
server.keepAliveTimeout = 65_000;
answerClientErrors(server, log);

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
    { name: 'close queues', run: () => services.close() },
    {
      name: 'quit redis',
      run: () => Promise.all([redis, queueConnection].map((c) => c.quit().catch(() => c.disconnect()))),
    },
    { name: 'flush traces', run: () => telemetry.shutdown() },
  ],
});
