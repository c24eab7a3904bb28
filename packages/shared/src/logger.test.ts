import { ReplyError } from 'ioredis';
import { type DestinationStream, type Logger, pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseRedactPath } from './log-redaction.ts';
import { createLogger, isoTime, REDACT_PATHS, serializeError } from './logger.ts';

describe('serializeError', () => {
  it('when an ioredis error carries its command, then the arguments are dropped and the message kept', () => {
    const queued = Object.assign(new ReplyError('OOM command not allowed'), {
      command: { name: 'hset', args: ['job', 'data', '{"input":"secret-marker"}'] },
    });
    const err = Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), {
      command: { name: 'exec', args: ['https://hook.example/?token=secret-marker'] },
      previousErrors: [queued],
    });
    const out = serializeError(err) as Record<string, unknown>;
    expect(JSON.stringify(out)).not.toContain('secret-marker');
    expect(out.message).toBe('EXECABORT Transaction discarded because of previous errors.');
    expect(out.previousErrors).toEqual(['OOM command not allowed']);
  });

  it('when an error has a cause with a command, then the cause is scrubbed too', () => {
    const cause = Object.assign(new Error('inner'), { command: { name: 'set', args: ['k', 'secret-marker'] } });
    const out = serializeError(new Error('outer', { cause }));
    expect(JSON.stringify(out)).not.toContain('secret-marker');
    expect(JSON.stringify(out)).toContain('inner');
  });
});

describe('isoTime', () => {
  afterEach(() => vi.useRealTimers());

  it('when the clock moves on or stays, then the time is always the ISO time pino writes for that millisecond', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    for (const at of [Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1) + 1, Date.UTC(2030, 5, 6, 7)]) {
      vi.setSystemTime(at);
      expect(isoTime()).toBe(pino.stdTimeFunctions.isoTime());
      expect(isoTime()).toBe(`,"time":"${new Date(at).toISOString()}"`);
    }
  });
});

describe('createLogger redaction', () => {
  const lines = (write: (log: Logger) => void, make: (dest: DestinationStream) => Logger): unknown[] => {
    const out: string[] = [];
    write(make({ write: (line: string) => out.push(line) }));
    return out.map((line) => {
      const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
      return rest;
    });
  };
  const ours = (dest: DestinationStream) => createLogger({ name: 'svc', level: 'debug', pretty: false }, dest);
  // pino's own redaction with the same paths: what the lines must be.
  const reference = (dest: DestinationStream) =>
    pino(
      {
        name: 'svc',
        level: 'debug',
        base: { service: 'svc' },
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        serializers: { err: serializeError },
      },
      dest,
    );

  const redisError = () =>
    Object.assign(new ReplyError('ERR wrong'), { command: { name: 'hset', args: ['k', 'secret-marker'] } });
  const objects: Record<string, unknown>[] = [
    { reqId: 'r1', req: { id: 'r1', method: 'POST', url: '/v1/jobs' }, res: { statusCode: 202 }, responseTime: 3 },
    {
      req: { headers: { authorization: 'Bearer secret-marker', cookie: 'c=secret-marker', 'idempotency-key': 'k' } },
    },
    { req: { headers: { accept: 'x' }, input: 'secret-marker', body: { input: 'kept: too deep' } } },
    { res: { headers: { 'set-cookie': ['a=secret-marker'], 'content-type': 'json' } } },
    { headers: { authorization: 'secret-marker', host: 'h' }, authorization: 'secret-marker' },
    { apiKey: 'secret-marker', password: 'secret-marker', secret: 'secret-marker', redisUrl: 'redis://:p@h' },
    { input: { rows: 'secret-marker' }, result: 42, returnvalue: 'secret-marker', checkpoint: { at: 1 } },
    { webhook: { url: 'https://h/?t=secret-marker' }, webhookUrl: 'https://h/?t=secret-marker' },
    { input: undefined, result: null, kept: undefined },
    { data: { input: 'secret-marker', type: 'simulate' }, job: { data: 'secret-marker', id: 'job_1' } },
    { job: { data: undefined, name: 'n' }, data: null, other: [{ input: 'kept: arrays are not searched' }] },
    {
      anything: {
        apiKey: 'secret-marker',
        password: 'secret-marker',
        secret: 'secret-marker',
        input: 'secret-marker',
        result: 'secret-marker',
        checkpoint: 'secret-marker',
        webhook: 'secret-marker',
        webhookUrl: 'secret-marker',
        keep: 1,
        deeper: { input: 'kept: two levels down' },
      },
    },
    { err: redisError() },
    { err: Object.assign(new Error('outer', { cause: redisError() }), { password: 'secret-marker' }) },
    { err: { message: 'plain', command: 'secret-marker', args: ['secret-marker'], input: 'secret-marker' } },
    { err: 'a message only', n: Number.NaN, flag: true, when: new Date(0) },
    { nested: { req: { headers: { authorization: 'kept: not at the top' } } } },
  ];

  it('when objects are logged, then each line equals what pino redacts with the same paths', () => {
    const write = (log: Logger) => {
      for (const obj of objects) log.info(obj, 'line');
      log.warn('message only');
      log.info({ a: 1 }, 'formatted %s %o', 'x', { input: 'secret-marker', kept: 1 });
      log.info('formatted %j', { req: { headers: { authorization: 'secret-marker' } } });
      log.error(redisError(), 'an error as the merging object');
      const child = log.child({ jobId: 'job_1', input: 'secret-marker', job: { data: 'secret-marker', id: 1 } });
      child.info({ durationMs: 3, webhook: 'secret-marker' }, 'analysis completed');
      child.child({ attempt: 2, anything: { secret: 'secret-marker' } }).error({ err: redisError() }, 'failed');
    };
    const got = lines(write, ours);
    expect(got).toEqual(lines(write, reference));
    expect(JSON.stringify(got)).not.toContain('secret-marker');
    expect(JSON.stringify(got)).toContain('kept: too deep');
  });

  it('when a line is redacted, then the object the caller logged is left as it was', () => {
    const logged = { input: 'secret-marker', req: { headers: { authorization: 'secret-marker' } } };
    const copy = structuredClone(logged);
    lines((log) => log.info(logged), ours);
    expect(logged).toEqual(copy);
  });
});

describe('parseRedactPath', () => {
  it('when a path uses dots, brackets and a leading wildcard, then its keys are read', () => {
    expect(parseRedactPath('req.headers["idempotency-key"]')).toEqual(['req', 'headers', 'idempotency-key']);
    expect(parseRedactPath("*.a['b c']")).toEqual(['*', 'a', 'b c']);
  });

  it('when a path cannot be read, or has a wildcard after its first key, then it throws', () => {
    for (const bad of ['', '.a', 'a..b', 'a[b]', 'a.*.b', 'a["b]']) expect(() => parseRedactPath(bad)).toThrow();
  });
});
