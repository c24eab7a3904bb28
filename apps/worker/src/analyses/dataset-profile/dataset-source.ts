import type { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { assertFetchableUrl, ForbiddenAddressError } from '../../net/public-address.ts';
import { DatasetError } from './dataset-error.ts';
import type { DatasetFormat } from './profiler.ts';

/** Limits on reading a dataset; from `config.dataset`. */
export interface SourceLimits {
  /** Largest dataset read, in bytes. */
  maxBytes: number;
  /** A URL must answer, and then keep sending, within this (ms). */
  fetchTimeoutMs: number;
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

/** The first ForbiddenAddressError in an error's cause chain (undici wraps connect errors). */
function forbidden(err: unknown): ForbiddenAddressError | undefined {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof ForbiddenAddressError) return e;
  return undefined;
}

function checkUrl(raw: string | URL, allowPrivate: boolean): URL {
  try {
    return assertFetchableUrl(String(raw), allowPrivate);
  } catch (err) {
    throw new DatasetError(`the dataset URL is refused: ${(err as Error).message}`);
  }
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Turns a network failure into a clear error: permanent for a refused address, transient otherwise. */
function networkError(err: unknown, timeoutMs: number, signal: AbortSignal): Error {
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  const refused = forbidden(err);
  if (refused) return new DatasetError(`the dataset URL is refused: ${refused.message}`);
  const code = (err as { code?: string }).code ?? '';
  if (/TIMEOUT/.test(code)) return new Error(`the dataset URL did not answer or stopped sending for ${timeoutMs} ms`);
  return new Error(`cannot fetch the dataset: ${(err as Error).message}`);
}

async function* counted(
  body: Readable,
  skip: number,
  startAt: number,
  limits: SourceLimits,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  let position = startAt;
  let toSkip = skip;
  try {
    for await (const raw of body) {
      let chunk = raw as Buffer;
      if (toSkip > 0) {
        const dropped = Math.min(toSkip, chunk.length);
        toSkip -= dropped;
        chunk = chunk.subarray(dropped);
        if (chunk.length === 0) continue;
      }
      position += chunk.length;
      if (position > limits.maxBytes) throw tooBig(limits.maxBytes);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw networkError(err, limits.fetchTimeoutMs, signal);
  } finally {
    body.destroy();
  }
}

/**
 * Opens a dataset URL at byte `from`: a Range request when resuming (with If-Range on the ETag),
 * falling back to reading and skipping `from` bytes when the server ignores ranges, or to the start
 * when the file changed. Redirects are followed by hand, each hop checked by the address guard.
 */
export async function openUrl(
  raw: string,
  from: number,
  previous: SourceValidator | undefined,
  { limits, dispatcher, signal }: { limits: SourceLimits; dispatcher: Dispatcher; signal: AbortSignal },
): Promise<OpenedSource> {
  let url = checkUrl(raw, limits.allowPrivate);
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (from > 0) {
      headers.range = `bytes=${from}-`;
      if (previous?.etag) headers['if-range'] = previous.etag;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        headers,
        dispatcher,
        signal,
        headersTimeout: limits.fetchTimeoutMs,
        bodyTimeout: limits.fetchTimeoutMs,
      });
    } catch (err) {
      throw networkError(err, limits.fetchTimeoutMs, signal);
    }
    const status = res.statusCode;
    if ([301, 302, 303, 307, 308].includes(status)) {
      await res.body.dump();
      const location = header(res.headers, 'location');
      if (!location) throw new DatasetError(`the dataset URL answered ${status} without a Location`);
      if (hop >= limits.maxRedirects)
        throw new DatasetError(`the dataset URL redirected more than ${limits.maxRedirects} times`);
      url = checkUrl(new URL(location, url), limits.allowPrivate);
      continue;
    }
    if (status !== 200 && status !== 206) {
      await res.body.dump();
      const what = `the dataset URL answered HTTP ${status}`;
      if (status === 408 || status === 429 || status >= 500) throw new Error(`${what}; will retry`);
      throw new DatasetError(what);
    }
    const etag = header(res.headers, 'etag');
    const lengthHeader = header(res.headers, 'content-length');
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
    let total: number | null = null;
    let offset = 0;
    let skip = 0;
    if (status === 206) {
      const range = /bytes (\d+)-\d+\/(\d+|\*)/.exec(header(res.headers, 'content-range') ?? '');
      if (!range || Number(range[1]) !== from) {
        await res.body.dump();
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
      await res.body.dump();
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
      chunks: counted(res.body, skip, offset, limits, signal),
    };
  }
}
