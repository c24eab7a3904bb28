import { trace } from '@opentelemetry/api';
import { tracing } from '@opentelemetry/sdk-node';
import { afterEach, describe, expect, it } from 'vitest';
import { withJobSpan, withSpan } from './telemetry.ts';

const job = { opts: {} };

describe('withJobSpan and withSpan', () => {
  afterEach(() => trace.disable());

  it('when no tracer provider is registered, then fn runs with a span that records nothing and its outcome passes through', async () => {
    expect(await withJobSpan(job, 'job.attempt', {}, async (span) => span.isRecording())).toBe(false);
    expect(await withSpan('step', {}, async () => 42)).toBe(42);
    await expect(withJobSpan(job, 'job.attempt', {}, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('when a tracer provider is registered, then each call records its span, and a failure its status', async () => {
    const exporter = new tracing.InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new tracing.BasicTracerProvider({ spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] }),
    );
    expect(await withJobSpan(job, 'job.attempt', { a: 1 }, async (span) => span.isRecording())).toBe(true);
    expect(await withSpan('step', {}, async () => 42)).toBe(42);
    await expect(withJobSpan(job, 'job.attempt', {}, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['job.attempt', 'step', 'job.attempt']);
    expect(spans[0]?.attributes).toEqual({ a: 1 });
    expect(spans[2]?.status.message).toBe('boom');
  });
});
