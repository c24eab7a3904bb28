import { startTelemetry, tracingEnabled } from '@longhaul/shared/telemetry';

// Tracing starts first, and everything else is imported after it: the instrumentations patch
// ioredis and undici as they load, which a static import would do before this line runs.
const telemetry = await startTelemetry({ serviceName: 'longhaul-worker', enabled: tracingEnabled(process.env) });
const { createLogger, createRedisConnection, handleShutdown, loadConfigOrExit, redactRedisUrl } = await import(
  '@longhaul/shared'
);
const { createDatasetProfile } = await import('./analyses/dataset-profile.ts');
const { createDatasetProfilePart } = await import('./analyses/dataset-profile-part.ts');
const { createProfileThreads } = await import('./analyses/dataset-profile/profile-thread-client.ts');
const { createSimulate } = await import('./analyses/simulate.ts');
const { createHealthServer } = await import('./health-server.ts');
const { implementations } = await import('./implementations.ts');
const { createWorkerMetrics } = await import('./metrics.ts');
const { createWebhookWorker } = await import('./webhooks/webhook-worker.ts');
const { createAnalysisWorker } = await import('./worker.ts');

const config = loadConfigOrExit(process.env, 'worker');
const log = createLogger({
  name: 'longhaul-worker',
  level: config.log.level,
  pretty: config.log.pretty,
  traceIds: telemetry.enabled,
});

// After an uncaught exception (or an unhandled rejection, which Node raises as one) the process is in
// an unknown state: log it and exit non-zero, so a supervisor restarts the worker and its jobs are
// recovered as stalled by another one. Only the error's name, message and stack are logged: other
// fields may carry job data (ioredis puts the command's arguments on its errors).
process.on('uncaughtException', (err, origin) => {
  const { name, message, stack } = err instanceof Error ? err : new Error(String(err));
  log.fatal({ origin, err: { type: name, message, stack } }, 'uncaught exception; the worker exits');
  process.exit(1);
});

const connection = createRedisConnection(config.redisUrl, 'worker', { name: 'longhaul-worker' });
const subscriber = createRedisConnection(config.redisUrl, 'worker', { name: 'longhaul-worker-cancel' });
let lastRedisError = '';
for (const c of [connection, subscriber]) {
  c.on('error', (err: Error) => {
    if (err.message !== lastRedisError) log.warn({ err: err.message }, 'redis connection error');
    lastRedisError = err.message;
  });
}
connection.on('ready', () => {
  lastRedisError = '';
  log.info({ redis: redactRedisUrl(config.redisUrl) }, 'redis ready');
});

const state = { draining: false };
// Both dataset analyses share the profile threads: a part of a parallel profile starts on a warm one.
const profileThreads = createProfileThreads();
const analysisWorker = createAnalysisWorker({
  config,
  log,
  connection,
  subscriber,
  // simulate with its test hooks as configured (both off unless SIMULATE_* is set).
  implementations: {
    ...implementations,
    simulate: createSimulate(config.simulate),
    'dataset-profile': createDatasetProfile(config.dataset, profileThreads),
    'dataset-profile-part': createDatasetProfilePart(config.dataset, profileThreads),
  },
});
const metrics = createWorkerMetrics();
metrics.observe(analysisWorker.worker);
const health = createHealthServer({
  redis: connection,
  state,
  strictRedisPolicy: config.strictRedisPolicy,
  // The API's probe deadline (app.ts): short, so a probe answers well within its own timeout.
  readyTimeoutMs: Math.min(900, config.limits.redisCommandTimeoutMs * 2),
  metricsToken: config.metricsToken,
  routes: { '/metrics': metrics.route(config.metricsToken) },
});
// Webhooks: deliveries from their own queue; BullMQ releases each when its job ends for good.
const webhooks = createWebhookWorker({ config, log, connection });

// Before the worker takes its first job: a SIGTERM during start-up (a deploy that replaces a
// replica at once) drains as any other, where Node's default would kill the process mid-job.
handleShutdown({
  log,
  // The grace period, the hand-back of what is still running, and closing connections.
  deadlineMs: config.worker.shutdownGraceMs + 20_000,
  steps: [
    {
      name: 'drain',
      run: () => {
        state.draining = true;
        return analysisWorker.drain(config.worker.shutdownGraceMs);
      },
    },
    { name: 'close webhooks', run: () => webhooks.close() },
    { name: 'close health server', run: () => new Promise((resolve) => health.close(() => resolve(undefined))) },
    {
      name: 'quit redis',
      // QUIT waits for a reconnecting client to connect: drop one that is not connected.
      run: () =>
        Promise.all([subscriber, connection].map((c) => (c.status === 'ready' ? c.quit() : c.disconnect()))).catch(
          () => undefined,
        ),
    },
    { name: 'flush traces', run: () => telemetry.shutdown() },
  ],
});

health.listen(config.workerPort, () => {
  const address = health.address();
  const port = typeof address === 'object' && address ? address.port : config.workerPort;
  log.info(
    { port, concurrency: config.worker.concurrency },
    `longhaul worker running; health on http://localhost:${port}`,
  );
});
await analysisWorker.start().catch((err: unknown) => {
  // A start-up cut short by the shutdown (its connections closed under it) is no failure.
  if (!state.draining) throw err;
});
// Not once a shutdown has begun (during the start above): its steps close the webhooks already.
if (!state.draining) webhooks.start();
