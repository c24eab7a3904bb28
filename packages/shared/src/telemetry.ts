import {
  type Attributes,
  context,
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

/**
 * Tracing: the OpenTelemetry Node SDK, exporting over OTLP as the standard `OTEL_*` variables say.
 * Nothing of the SDK is loaded unless tracing is on; with it off (no tracer provider registered),
 * the helpers below make no span and propagate nothing.
 *
 * Only this file imports the OpenTelemetry API or SDK. It imports nothing that loads express,
 * ioredis or pino (it is its own package entry, `@longhaul/shared/telemetry`), so `main.ts` can
 * start tracing before those load, which the instrumentations need to patch them.
 */

/** The tracer's name (the instrumentation scope of our own spans). */
const TRACER = 'longhaul';

/** Paths never traced: probes and scrapes would drown the jobs' traces. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export interface Telemetry {
  /** Whether the SDK was started. */
  readonly enabled: boolean;
  /** Flushes the spans still buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/**
 * Whether to trace: an OTLP endpoint is configured and the SDK is not disabled. Pure: give it
 * the environment (main.ts does).
 */
export function tracingEnabled(env: Record<string, string | undefined>): boolean {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  return Boolean(endpoint) && env.OTEL_SDK_DISABLED?.toLowerCase() !== 'true';
}

/**
 * Outgoing URLs (webhook targets, datasets) are a job's input and may carry tokens in their path
 * or query: spans keep their origin only.
 */
function redactedUrl(origin: string): Attributes {
  return { 'url.full': `${origin}/[redacted]`, 'url.path': '[redacted]', 'url.query': '' };
}

/**
 * Starts the SDK (traces only; metrics stay on Prometheus) with the http, express, ioredis and
 * undici instrumentations, or does nothing when `enabled` is false. Call it before anything
 * imports express or ioredis: in ESM, the module hook registered here must see them load.
 */
export async function startTelemetry({
  serviceName,
  enabled,
}: {
  serviceName: string;
  enabled: boolean;
}): Promise<Telemetry> {
  if (!enabled) return { enabled: false, shutdown: async () => undefined };

  // ESM imports are only visible to import-in-the-middle's loader hook; the CJS requires inside
  // those packages to require-in-the-middle. The message channel limits the hook to the modules
  // the instrumentations ask for (it cannot parse the TypeScript tsx serves in development).
  const { register } = await import('node:module');
  const { createAddHookMessageChannel } = await import('import-in-the-middle');
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);

  const [{ NodeSDK, resources }, { HttpInstrumentation }, { ExpressInstrumentation }, ioredis, undici] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-express'),
      import('@opentelemetry/instrumentation-ioredis'),
      import('@opentelemetry/instrumentation-undici'),
    ]);

  const sdk = new NodeSDK({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still win (the env detector merges over this).
    resource: resources.resourceFromAttributes({ 'service.name': serviceName }),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
      }),
      new ExpressInstrumentation(),
      new ioredis.IORedisInstrumentation({
        // Only calls made for a traced request or job: not the workers' blocking polls.
        requireParentSpan: true,
        // The command's name only. The default keeps the arguments of EVALSHA, HSET, XADD…,
        // which carry job inputs, results and webhook URLs.
        dbStatementSerializer: (command) => command,
      }),
      new undici.UndiciInstrumentation({
        requireParentforSpans: true,
        startSpanHook: (request) => redactedUrl(request.origin),
      }),
    ],
  });
  sdk.start();
  await waitForAllMessagesAcknowledged();
  return { enabled: true, shutdown: () => sdk.shutdown() };
}

/** What the global tracer provider delegates to while no SDK is registered: the API's no-op one. */
const NO_PROVIDER = new ProxyTracerProvider().getDelegate();
/** The span `fn` gets when nothing records spans. */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * No tracer provider is registered (neither `startTelemetry` nor any other setup): every span would
 * be a no-op and no span context could be propagated, so the helpers below skip that work. Through
 * the API's no-op tracer, a span, its context and the wrapper around `fn` were 3–5 µs of a no-op
 * job in the worker's profile.
 */
function tracingOff(): boolean {
  const provider = trace.getTracerProvider() as Partial<ProxyTracerProvider>;
  return provider.getDelegate?.() === NO_PROVIDER;
}

/**
 * The active span context as BullMQ's `telemetry.metadata` job option holds it: the W3C
 * `traceparent` (and `tracestate`) as JSON, the format bullmq-otel writes and reads.
 * `undefined` when there is nothing to propagate (tracing off, or no active span).
 */
export function traceMetadata(): string | undefined {
  if (tracingOff()) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ? JSON.stringify(carrier) : undefined;
}

/** The job's propagated context, or the active one when it has none (or it does not parse). */
function contextFrom(metadata: string | undefined) {
  if (!metadata) return context.active();
  try {
    return propagation.extract(context.active(), JSON.parse(metadata) as Record<string, string>);
  } catch {
    return context.active();
  }
}

/** What a job carries for tracing: BullMQ's job option `telemetry.metadata`. */
export interface TracedJob {
  opts?: { telemetry?: { metadata?: string } };
}

/**
 * Runs `fn` in a span that joins the trace the job was created in. The span records an error
 * thrown by `fn` (its message only: never inputs or results) and ends when `fn` settles; with
 * tracing off, `fn` gets a span that records nothing. Attributes must never carry job inputs or
 * results.
 */
export function withJobSpan<T>(
  job: TracedJob,
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (tracingOff()) return fn(NO_SPAN);
  const tracer = trace.getTracer(TRACER);
  const parent = contextFrom(job.opts?.telemetry?.metadata);
  return tracer.startActiveSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs `fn` in a child span of the active one (an attempt's, for a durable step); with tracing
 * off, `fn` alone. Attributes must never carry job inputs or results.
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  if (tracingOff()) return fn();
  return trace.getTracer(TRACER).startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Records, after the fact, the time a job waited in the queue: a span from `start` to `end`
 * (epoch ms) in the job's trace.
 */
export function recordQueueWait(job: TracedJob, start: number, end: number, attributes: Attributes): void {
  if (!(end >= start)) return;
  const tracer = trace.getTracer(TRACER);
  const parent = contextFrom(job.opts?.telemetry?.metadata);
  tracer.startSpan('job.queue_wait', { kind: SpanKind.INTERNAL, startTime: start, attributes }, parent).end(end);
}

/** `trace_id` and `span_id` of the active span, for log lines (a pino mixin). */
export function traceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ids = span.spanContext();
  return trace.isSpanContextValid(ids) ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
}
