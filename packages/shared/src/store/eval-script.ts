import { createHash } from 'node:crypto';
import type { RedisConnection } from '../redis.ts';

/** SHA-1 of each script, computed once. */
const scriptShas = new Map<string, string>();

/**
 * EVALSHA, falling back to EVAL when Redis does not know the script (after a restart or SCRIPT
 * FLUSH): our scripts run on every submit and status read, and sending their text each time costs
 * bytes on the wire and a SHA-1 in Redis per call. Not ioredis' `defineCommand`: it would add the
 * scripts to every pipeline this connection builds.
 */
export async function evalScript(
  redis: RedisConnection,
  script: string,
  numKeys: number,
  ...args: string[]
): Promise<unknown> {
  let sha = scriptShas.get(script);
  if (!sha) {
    sha = createHash('sha1').update(script).digest('hex');
    scriptShas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, numKeys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script, numKeys, ...args);
  }
}
