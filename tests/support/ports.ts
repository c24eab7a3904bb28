import { createServer } from 'node:net';

/**
 * A TCP port that was free a moment ago on 127.0.0.1 (the OS picks it: listen(0), read it, close).
 * Another process may still take it before the caller binds it; callers that spawn a server on it
 * retry on EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a listening socket'));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
