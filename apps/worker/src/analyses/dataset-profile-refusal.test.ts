import { Writable } from 'node:stream';
import { analyses, type Logger } from '@longhaul/shared';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnalysisContext } from '../define-analysis.ts';
import { createDatasetProfile } from './dataset-profile.ts';

/** A debug-level logger whose lines are kept, to check what a refusal logs. */
function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink) as unknown as Logger, lines };
}

describe('a refused dataset URL', () => {
  it('when the URL names a private address, then the tenant is told the rule and the setting, and the log keeps the address but not the URL', async () => {
    const { log, lines } = capturingLogger();
    const ctx: AnalysisContext = {
      jobId: 'job_test',
      attempt: 1,
      run: 1,
      step: async (_name, fn) => fn(),
      progress: () => undefined,
      checkpoint: async () => undefined,
      restored: undefined,
      spawn: () => Promise.reject(new Error('no fan-out in this test')),
      signal: new AbortController().signal,
      log,
    };
    const input = analyses['dataset-profile'].input.parse({
      source: { url: 'http://10.9.8.7/export.csv?token=url-secret-marker' },
    });
    const err = await createDatasetProfile({ allowPrivate: false })
      .run(input, ctx)
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toMatch(/non-public address, which is not allowed \(DATASET_ALLOW_PRIVATE is off\)/);
    expect(message).not.toMatch(/10\.9\.8\.7/);
    const logged = lines.join('');
    expect(logged).toMatch(/10\.9\.8\.7/);
    expect(logged).not.toMatch(/url-secret-marker|export\.csv/);
  });
});
