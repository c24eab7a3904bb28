import { type ClientRequest, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { assertFetchableUrl, guardedLookup } from './public-address.ts';

/** No answer (connect and response headers) within the allowed time. */
export class HeadersTimeoutError extends Error {
  readonly code = 'HEADERS_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`no response headers within ${timeoutMs} ms`);
    this.name = 'HeadersTimeoutError';
  }
}

export interface GuardedGetOptions {
  headers: Record<string, string>;
  /** Allow loopback, private, link-local… targets. */
  allowPrivate: boolean;
  /** Connecting and receiving the response headers must take less than this (ms). */
  headersTimeoutMs: number;
  /** Aborts the request at any point, body included. */
  signal: AbortSignal;
}

export interface GuardedResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /**
   * The body as it arrives. It already has an `error` listener, so an error while nobody reads is
   * never thrown as an uncaught exception; the error surfaces when the body is read.
   */
  body: IncomingMessage;
}

/**
 * One HTTP(S) GET with node:http, to a public address only: the URL is checked first (scheme, literal
 * IP) and the socket's DNS lookup refuses non-public addresses after resolution. Redirects are not
 * followed: the caller checks each hop and calls again.
 *
 * Why node:http and not undici: undici 7's HTTP/1 parser throws an uncatchable
 * `AssertionError: assert(!this.paused)` when a server closes the socket (FIN) while the response
 * body is paused under backpressure, which is exactly what a slow consumer of a big download does
 * (https://github.com/nodejs/undici/issues/5360, fixed only in undici 8, which needs Node 22).
 * node:http applies backpressure by pausing the socket, so a FIN waits behind the unread bytes, and
 * its failures are `error` events we listen to.
 */
export function guardedGet(url: URL, options: GuardedGetOptions): Promise<GuardedResponse> {
  assertFetchableUrl(url.href, options.allowPrivate, 'DATASET_ALLOW_PRIVATE');
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    try {
      req = send(url, {
        method: 'GET',
        headers: options.headers,
        // A fresh connection per request: nothing is pooled that a hostile server left half-read.
        agent: false,
        lookup: guardedLookup(options.allowPrivate, 'DATASET_ALLOW_PRIVATE'),
        signal: options.signal,
      });
    } catch (err) {
      reject(err);
      return;
    }
    const timer = setTimeout(
      () => req.destroy(new HeadersTimeoutError(options.headersTimeoutMs)),
      options.headersTimeoutMs,
    );
    // Kept for the request's whole life: a late socket or parser error (bytes past Content-Length,
    // a reset after the response ended) must never become an uncaught `error` event.
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', (res) => {
      clearTimeout(timer);
      res.on('error', () => undefined);
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    req.end();
  });
}
