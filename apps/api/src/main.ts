import {
  ConfigError,
  createLogger,
  createRedisConnection,
  handleShutdown,
  type JobData,
  loadConfig,
  QUEUES,
  redactRedisUrl,
} from '@longhaul/shared';
import { Queue } from 'bullmq';
import { createApp } from './app.ts';

function loadOrExit() {
  try {
    return loadConfig(process.env, 'api');
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`longhaul api: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const config = loadOrExit();
const log = createLogger({ name: 'longhaul-api', level: config.log.level, pretty: config.log.pretty });

const redis = createRedisConnection(config.redisUrl, 'producer', {
  commandTimeoutMs: config.limits.redisCommandTimeoutMs,
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
const queue = new Queue<JobData>(QUEUES.analyses, {
  connection: redis,
  prefix: config.queuePrefix,
  skipVersionCheck: true,
  skipWaitingForReady: true,
});
queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));

const app = createApp({ config, log, redis, queue });
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
    { name: 'stop accepting', run: () => new Promise((resolve) => server.close(() => resolve(undefined))) },
    { name: 'close queue', run: () => queue.close() },
    { name: 'quit redis', run: () => redis.quit().catch(() => redis.disconnect()) },
  ],
});
