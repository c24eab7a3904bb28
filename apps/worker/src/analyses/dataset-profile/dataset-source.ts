import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { type GuardedResponse, guardedGet } from '../../net/guarded-get.ts';
import { assertFetchableUrl, ForbiddenAddressError } from '../../net/public-address.ts';
import { DatasetError } from './dataset-error.ts';
import type { DatasetFormat } from './profiler.ts';

/** Limits on reading a dataset; from `config.dataset`. */
export interface SourceLimits {
  /** Largest dataset read, in bytes. */
  maxBytes: number;
  /** A URL must answer, and then keep sending, within this (ms). */
  fetchTimeoutMs: number;
  /** The whole fetch, first request to last byte, must end within this (ms). */
  fetchTotalMs: number;
  maxRedirects: number;
  allowPrivate: boolean;
}

/** What identifies the bytes behind a URL, so a resume never splices two versions of a file. */
export interface SourceValidator {
  etag?: string;
  length?: number;
}

export interface OpenedSource {
  /** The absolute offset of the first byte `chunks` yields (the resume offset, or 0 when starting over). */
  offset: number;
  /** The dataset's full size when known. */
  total: number | null;
  formatHint: DatasetFormat | undefined;
  validator: SourceValidator;
  chunks: AsyncIterable<Uint8Array>;
}

const INLINE_CHUNK = 256 * 1024;

const tooBig = (maxBytes: number) =>
  new DatasetError(`the dataset is larger than the ${maxBytes}-byte limit (DATASET_MAX_BYTES)`);

/** An inline dataset from `from` on, in chunks. */
export function openInline(text: string, from: number, maxBytes: number): OpenedSource {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > maxBytes) throw tooBig(maxBytes);
  const offset = from <= bytes.length ? from : 0;
  return {
    offset,
    total: bytes.length,
    formatHint: undefined,
    validator: { length: bytes.length },
    chunks: (async function* () {
      for (let at = offset; at < bytes.length; at += INLINE_CHUNK) yield bytes.subarray(at, at + INLINE_CHUNK);
    })(),
  };
}

function formatHint(url: URL, contentType: string | undefined): DatasetFormat | undefined {
  const type = (contentType ?? '').toLowerCase();
  if (/ndjson|jsonl|json-seq|\/json/.test(type)) return 'ndjson';
  if (/csv|tab-separated/.test(type)) return 'csv';
  if (/\.(ndjson|jsonl)$/i.test(url.pathname)) return 'ndjson';
  if (/\.(csv|tsv)$/i.test(url.pathname)) return 'csv';
  return undefined;
}

/** The first ForbiddenAddressError in an error's cause chain. */
export function forbidden(err: unknown): ForbiddenAddressError | undefined {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof ForbiddenAddressError) return e;
  return undefined;
}

function checkUrl(raw: string | URL, allowPrivate: boolean): URL {
  try {
    return assertFetchableUrl(String(raw), allowPrivate, 'DATASET_ALLOW_PRIVATE');
  } catch (err) {
    throw new DatasetError(`the dataset URL is refused: ${(err as Error).message}`, { cause: err });
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The deadline of one fetch: the job's signal (cancel, shutdown) or `DATASET_FETCH_TOTAL_MS`. */
interface Deadline {
  signal: AbortSignal;
  /** The job's own signal, whose reason wins over ours. */
  job: AbortSignal;
  totalMs: number;
  expired: AbortSignal;
}

/** Waiting for the next body chunk took longer than the idle timeout. */
class IdleTimeoutError extends Error {
  readonly code = 'IDLE_TIMEOUT';
}

/** Turns a network failure into a clear error: permanent for a refused address, transient otherwise. */
function networkError(err: unknown, timeoutMs: number, deadline: Deadline): Error {
  if (deadline.job.aborted) {
    const reason = deadline.job.reason;
    return reason instanceof Error ? reason : new Error(String(reason));
  }
  if (deadline.expired.aborted) {
    return new Error(
      `the dataset fetch took longer than its ${deadline.totalMs} ms limit (DATASET_FETCH_TOTAL_MS); a retry, while attempts remain, resumes from the last checkpoint`,
    );
  }
  const refused = forbidden(err);
  if (refused) return new DatasetError(`the dataset URL is refused: ${refused.message}`, { cause: refused });
  const code = (err as { code?: string }).code ?? '';
  if (/TIMEOUT/.test(code)) return new Error(`the dataset URL did not answer or stopped sending for ${timeoutMs} ms`);
  if (code === 'ECONNRESET')
    return new Error('cannot fetch the dataset: the connection closed before the whole body arrived');
  if (/^Z_|BROTLI/.test(code) && code !== 'Z_BUF_ERROR') {
    return new DatasetError(`the dataset's Content-Encoding is corrupt: ${(err as Error).message}`);
  }
  return new Error(`cannot fetch the dataset: ${(err as Error).message}`);
}

/** `next` of an iterator, failing when nothing arrives for `ms`. The timer runs only while we wait. */
async function nextWithin<T>(it: AsyncIterator<T>, ms: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new IdleTimeoutError(`no data for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([it.next(), idle]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The decoded body: identity as is; gzip, deflate and br decompressed (the output is what is counted
 * against `maxBytes`, so a small "gzip bomb" that expands hugely stops at the limit).
 */
function decoded(body: IncomingMessage, encoding: string): Readable {
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : createBrotliDecompress();
  // The error surfaces through reading the decoder; pipeline destroys both streams on either side's error.
  pipeline(body, decoder, () => undefined);
  return decoder;
}

/** A range's body sent more, or ended with less, than the range asked for. */
class RangeLengthError extends Error {}

/**
 * The body's bytes, counted against `maxBytes`, after skipping `skip` of them. With `until`, the
 * body must end exactly at that absolute position: a range request's answer is bounded by what
 * was asked for, whatever the server's framing says.
 */
async function* counted(
  body: Readable,
  skip: number,
  startAt: number,
  limits: SourceLimits,
  deadline: Deadline,
  until?: number,
): AsyncGenerator<Uint8Array> {
  let position = startAt;
  let toSkip = skip;
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    for (;;) {
      // Our own idle timer, running only while we wait for bytes: the body is never read ahead of
      // the consumer beyond the stream's buffer, and a slow consumer is not mistaken for a slow server.
      const next = await nextWithin(it, limits.fetchTimeoutMs);
      if (next.done) break;
      let chunk = next.value;
      if (toSkip > 0) {
        const dropped = Math.min(toSkip, chunk.length);
        toSkip -= dropped;
        chunk = chunk.subarray(dropped);
        if (chunk.length === 0) continue;
      }
      position += chunk.length;
      if (position > limits.maxBytes) throw tooBig(limits.maxBytes);
      if (until !== undefined && position > until) {
        throw new RangeLengthError('the dataset URL sent more bytes than the range asked for');
      }
      yield chunk;
    }
    if (until !== undefined && position < until) {
      throw new RangeLengthError(
        'the connection closed before the whole range arrived (retried while attempts remain)',
      );
    }
  } catch (err) {
    if (err instanceof DatasetError || err instanceof RangeLengthError) throw err;
    throw networkError(err, limits.fetchTimeoutMs, deadline);
  } finally {
    body.destroy();
  }
}

/** One GET of a dataset URL that answered 200 or 206 with an encoding we can read. */
interface Answered {
  url: URL;
  res: GuardedResponse;
  deadline: Deadline;
  /** The Content-Encoding, lowercased (`identity` when none). */
  encoding: string;
}

/**
 * Sends a GET with `headers`, following redirects by hand (each hop checked by the address guard).
 * The whole fetch, from the first request to the last byte read, is bounded by `fetchTotalMs`.
 */
async function get(
  raw: string,
  headers: Record<string, string>,
  { limits, signal }: { limits: SourceLimits; signal: AbortSignal },
): Promise<Answered> {
  let url = checkUrl(raw, limits.allowPrivate);
  const expired = AbortSignal.timeout(limits.fetchTotalMs);
  const deadline: Deadline = {
    signal: AbortSignal.any([signal, expired]),
    job: signal,
    totalMs: limits.fetchTotalMs,
    expired,
  };
  for (let hop = 0; ; hop++) {
    let res: GuardedResponse;
    try {
      res = await guardedGet(url, {
        headers: { 'accept-encoding': 'identity', 'user-agent': 'longhaul-dataset-profile/1', ...headers },
        allowPrivate: limits.allowPrivate,
        headersTimeoutMs: limits.fetchTimeoutMs,
        signal: deadline.signal,
      });
    } catch (err) {
      throw networkError(err, limits.fetchTimeoutMs, deadline);
    }
    const { statusCode: status, body } = res;
    if ([301, 302, 303, 307, 308].includes(status)) {
      body.destroy();
      const location = header(res.headers, 'location');
      if (!location) throw new DatasetError(`the dataset URL answered ${status} without a Location`);
      if (hop >= limits.maxRedirects)
        throw new DatasetError(`the dataset URL redirected more than ${limits.maxRedirects} times`);
      url = checkUrl(new URL(location, url), limits.allowPrivate);
      continue;
    }
    if (status !== 200 && status !== 206) {
      body.destroy();
      const what = `the dataset URL answered HTTP ${status}`;
      if (status === 408 || status === 429 || status >= 500) throw new Error(`${what} (retried while attempts remain)`);
      throw new DatasetError(what);
    }
    const encoding = (header(res.headers, 'content-encoding') ?? 'identity').trim().toLowerCase();
    if (!['identity', 'gzip', 'x-gzip', 'deflate', 'br'].includes(encoding)) {
      body.destroy();
      throw new DatasetError(
        `the dataset URL answered with an unsupported Content-Encoding (${encoding.slice(0, 40)})`,
      );
    }
    return { url, res, deadline, encoding };
  }
}

/**
 * Opens a dataset URL at byte `from`: a Range request when resuming (with If-Range on the ETag),
 * falling back to reading and skipping `from` bytes when the server ignores ranges, or to the start
 * when the file changed. Redirects are followed by hand, each hop checked by the address guard.
 * The whole fetch, from the first request to the last byte read, is bounded by `fetchTotalMs`.
 */
export async function openUrl(
  raw: string,
  from: number,
  previous: SourceValidator | undefined,
  { limits, signal }: { limits: SourceLimits; signal: AbortSignal },
): Promise<OpenedSource> {
  const headers: Record<string, string> = {};
  if (from > 0) {
    headers.range = `bytes=${from}-`;
    if (previous?.etag) headers['if-range'] = previous.etag;
  }
  const { url, res, deadline, encoding } = await get(raw, headers, { limits, signal });
  const { statusCode: status, body } = res;
  const encoded = encoding !== 'identity';
  if (encoded && status === 206) {
    // A range of compressed bytes cannot be decompressed on its own.
    body.destroy();
    throw new DatasetError('the dataset URL answered a compressed partial response (Content-Encoding with 206)');
  }
  const etag = header(res.headers, 'etag');
  const lengthHeader = header(res.headers, 'content-length');
  // With a Content-Encoding, Content-Length counts the compressed bytes: the dataset's size is unknown.
  const length = lengthHeader === undefined || encoded ? undefined : Number(lengthHeader);
  let total: number | null = null;
  let offset = 0;
  let skip = 0;
  if (status === 206) {
    const range = /bytes (\d+)-\d+\/(\d+|\*)/.exec(header(res.headers, 'content-range') ?? '');
    if (!range || Number(range[1]) !== from) {
      body.destroy();
      throw new Error('the dataset URL answered a range other than the one asked for');
    }
    offset = from;
    total = range[2] === '*' ? null : Number(range[2]);
  } else {
    total = length ?? null;
    // A 200 to a range request: the whole file. Skip to the offset only if it is the same file.
    const same =
      from > 0 &&
      (previous?.etag ? previous.etag === etag : true) &&
      (previous?.length !== undefined ? previous.length === total : true);
    if (same) {
      offset = from;
      skip = from;
    }
  }
  if (total !== null && total > limits.maxBytes) {
    body.destroy();
    throw tooBig(limits.maxBytes);
  }
  const validator: SourceValidator = {};
  if (etag) validator.etag = etag;
  if (total !== null) validator.length = total;
  return {
    offset,
    total,
    formatHint: formatHint(url, header(res.headers, 'content-type')),
    validator,
    chunks: counted(encoded ? decoded(body, encoding) : body, skip, offset, limits, deadline),
  };
}

/** A byte range of a dataset URL, or why the server did not give it. */
export type OpenedRange =
  | {
      ranged: true;
      /** The dataset's full size, from Content-Range. */
      total: number;
      formatHint: DatasetFormat | undefined;
      validator: SourceValidator;
      /** Exactly the bytes `[start, min(end, total))`. */
      chunks: AsyncIterable<Uint8Array>;
    }
  | { ranged: false; reason: string };

/**
 * Opens the bytes `[start, end)` of a dataset URL with a Range request, for a parallel profile:
 * its split probes and its parts. The server must answer 206, uncompressed, with a Content-Range
 * that names that very range (cut at the end of the file) and a known size; with `expected`, the
 * same ETag (sent as If-Range) and size as before. Any other answer is `ranged: false` with a
 * reason, and the caller profiles the dataset in one pass instead. The body is held to exactly
 * the range, and to every limit a whole fetch has (redirects, address guard, timeouts, size).
 */
export async function openRange(
  raw: string,
  start: number,
  end: number,
  expected: SourceValidator | undefined,
  { limits, signal }: { limits: SourceLimits; signal: AbortSignal },
): Promise<OpenedRange> {
  const headers: Record<string, string> = { range: `bytes=${start}-${end - 1}` };
  if (expected?.etag) headers['if-range'] = expected.etag;
  const { url, res, deadline, encoding } = await get(raw, headers, { limits, signal });
  const { statusCode: status, body } = res;
  const refuse = (reason: string): OpenedRange => {
    body.destroy();
    return { ranged: false, reason };
  };
  if (status !== 206) {
    return refuse(
      expected
        ? 'the dataset changed, or its server stopped answering Range requests'
        : 'its server ignores Range requests',
    );
  }
  if (encoding !== 'identity') return refuse('its server compresses Range answers');
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((header(res.headers, 'content-range') ?? '').trim());
  if (!range || range[3] === '*') return refuse("its server does not give the dataset's size");
  const total = Number(range[3]);
  const until = Math.min(end, total);
  if (Number(range[1]) !== start || Number(range[2]) !== until - 1) {
    return refuse('its server answered a range other than the one asked for');
  }
  const etag = header(res.headers, 'etag');
  if (expected && (expected.length !== total || (expected.etag !== undefined && expected.etag !== etag))) {
    return refuse('the dataset changed while it was profiled in parts');
  }
  if (total > limits.maxBytes) {
    body.destroy();
    throw tooBig(limits.maxBytes);
  }
  const validator: SourceValidator = { length: total };
  if (etag) validator.etag = etag;
  return {
    ranged: true,
    total,
    formatHint: formatHint(url, header(res.headers, 'content-type')),
    validator,
    chunks: counted(body, 0, start, limits, deadline, until),
  };
}
