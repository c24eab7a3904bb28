import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../clients/webhook-receiver.ts';
import { simulate, startSystem } from '../e2e/fixtures.ts';
import { waitFor } from '../support/wait.ts';

/** One exported span, flattened from OTLP/JSON (`ExportTraceServiceRequest`). */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
type OtlpAttribute = { key: string; value: OtlpValue };

function attributes(list: OtlpAttribute[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) {
    out[key] = value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue;
  }
  return out;
}

/**
 * A stand-alone OTLP/HTTP receiver: it decodes `http/json` trace exports as the OTLP spec writes
 * them, with nothing of the project's code.
 */
async function startOtlpReceiver() {
  const spans: ReceivedSpan[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of body.resourceSpans ?? []) {
          const service = String(attributes(rs.resource?.attributes)['service.name']);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
                name: s.name,
                kind: s.kind,
                attributes: attributes(s.attributes),
              });
            }
          }
        }
      }
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const SECRET = 'whsec-tenant-a-0123456789abcdef';
/** Found only in the job's input (a key of simulate's schema) and in the webhook URL's query. */
const INPUT_MARKER = 'durationMs';
const URL_TOKEN = 'url-token-7f3a9c';
const SPAN_KIND_SERVER = 2;

describe('traces over OTLP, real api and worker processes', () => {
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let system: Awaited<ReturnType<typeof startSystem>>;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    system = await startSystem({
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      WEBHOOK_SECRETS: `a:${SECRET}`,
      WEBHOOK_ALLOW_PRIVATE: 'true',
    });
  });
  afterAll(async () => {
    await system?.stop();
    await otlp?.close();
  });

  it('when a job with durable steps and a webhook runs, then the submit, the attempt, its steps and the delivery share one trace with no job input in any attribute', async () => {
    const receiver = await startReceiver(() => 204);
    try {
      const res = await system.a.post(
        '/v1/jobs',
        simulate(
          { [INPUT_MARKER]: 50, steps: 2, durable: true },
          { webhook: { url: receiver.url(`/hook?token=${URL_TOKEN}`) } },
        ),
      );
      expect(res.status).toBe(202);
      const id = res.body.id as string;

      const byName = (name: string) =>
        otlp.spans.find((s) => s.name === name && s.attributes['longhaul.job.id'] === id);
      const delivery = await waitFor(() => byName('webhook.deliver'), { timeoutMs: 20_000, what: 'the delivery span' });
      const attempt = await waitFor(() => byName('job.attempt'), { what: 'the attempt span' });
      const wait = await waitFor(() => byName('job.queue_wait'), { what: 'the queue wait span' });
      const submit = await waitFor(
        () =>
          otlp.spans.find(
            (s) =>
              s.service === 'longhaul-api' &&
              s.kind === SPAN_KIND_SERVER &&
              s.traceId === attempt.traceId &&
              s.attributes['http.route'] === '/v1/jobs',
          ),
        { what: "the API's POST /v1/jobs server span in the attempt's trace" },
      );

      expect(submit.attributes['http.request.method'] ?? submit.attributes['http.method']).toBe('POST');
      expect(attempt).toMatchObject({ service: 'longhaul-worker', traceId: submit.traceId });
      expect(attempt.attributes).toMatchObject({ 'longhaul.job.type': 'simulate', 'longhaul.job.attempt': 1 });
      expect(wait.traceId).toBe(submit.traceId);
      expect(delivery).toMatchObject({ service: 'longhaul-worker', traceId: submit.traceId });
      // Each durable step that ran is a span of the attempt's trace.
      const steps = otlp.spans.filter((s) => s.name === 'job.step' && s.attributes['longhaul.job.id'] === id);
      expect(steps.map((s) => s.attributes['longhaul.step.name'])).toHaveLength(2);
      expect(steps.every((s) => s.traceId === submit.traceId)).toBe(true);

      // Redis calls made for the job are in its trace too, in both processes.
      const redisIn = (service: string) =>
        otlp.spans.some(
          (s) =>
            s.service === service &&
            s.traceId === submit.traceId &&
            (s.attributes['db.system'] ?? s.attributes['db.system.name']) === 'redis',
        );
      expect(redisIn('longhaul-api')).toBe(true);
      expect(redisIn('longhaul-worker')).toBe(true);

      // The receiver can join the trace: the POST carried the W3C traceparent.
      const traceparent = String(receiver.received[0]?.headers.traceparent ?? '');
      expect(traceparent.split('-')[1]).toBe(submit.traceId);

      const inTrace = otlp.spans.filter((s) => s.traceId === submit.traceId);
      const leaked = inTrace.filter((s) =>
        Object.values(s.attributes).some((v) => String(v).includes(INPUT_MARKER) || String(v).includes(URL_TOKEN)),
      );
      expect(leaked).toEqual([]);

      // Log lines written inside the attempt carry its trace.
      const started = system.worker.jsonLogs().find((l) => l.jobId === id && l.msg === 'analysis started');
      expect(started).toMatchObject({ trace_id: submit.traceId, span_id: attempt.spanId });
    } finally {
      await receiver.close();
    }
  });
});
