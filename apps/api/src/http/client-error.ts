import { randomUUID } from 'node:crypto';
import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '@longhaul/shared';

/** What Node's HTTP parser reports, as the API answers it (Node's own choice of status for each). */
const ANSWERS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'headers_too_large',
    message: 'the request headers are larger than the server takes (16 KiB in all)',
  },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: {
    status: 413,
    code: 'payload_too_large',
    message: 'the chunk extensions are larger than the server takes',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'request_timeout',
    message: 'the request was not received in time',
  },
};
const MALFORMED = { status: 400, code: 'bad_request', message: 'the request is not well-formed HTTP/1.1' };

/**
 * A request Node's HTTP parser refuses (a header section over its limit, a malformed request line)
 * never reaches Express: Node answers a bare status line itself, with no body and no
 * `X-Request-Id`. This answers it in the API's shape instead, as every other error is, and closes
 * the connection (the parser cannot go on after an error).
 */
export function answerClientErrors(server: Server, log: Logger): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already started on this connection (keep-alive) cannot be followed by another.
    const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || started) {
      socket.destroy();
      return;
    }
    const { status, code, message } = ANSWERS[err.code ?? ''] ?? MALFORMED;
    const requestId = randomUUID();
    log.debug({ requestId, status, parserError: err.code }, 'request refused by the HTTP parser');
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
}
