import { connect } from 'node:net';

/**
 * Sends one inline `PING` over a raw socket and resolves `true` on `+PONG`, `false` on anything else
 * (refused, timed out, `-LOADING`, auth error). No client library: a frozen or half-started server
 * must make this return `false` within `timeoutMs` instead of queueing the command forever.
 */
export function pingRedis(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    let settled = false;
    const socket = connect({ port, host });
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}
