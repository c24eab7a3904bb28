import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { serializeError } from './logger.ts';

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
