import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { isStoredResult, type JobView } from '@longhaul/shared';
import type { Response } from 'express';
import { HttpError } from '../http/http-error.ts';
import type { Deadline } from './routes.ts';

export interface ResultStreamDeps {
  /** The stored result of a completed job, as its raw bytes (the job store's `storedResult`). */
  readStored: (id: string) => Promise<Buffer | null>;
  deadline: Deadline;
  /** Result responses being decompressed and sent at once; the others wait in line. */
  concurrency: number;
  /** Requests waiting in line, past which a read answers 503 with Retry-After. */
  maxWaiting: number;
}

/** A counting semaphore with a bounded FIFO line. */
function createSemaphore(limit: number, maxWaiting: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return {
    /** Resolves with a release function once a place is free; null when the line is full. */
    async acquire(): Promise<(() => void) | null> {
      if (active >= limit) {
        if (waiting.length >= maxWaiting) return null;
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        active++;
      }
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const next = waiting.shift();
        // The place passes straight to the next in line (`active` stays as it is).
        if (next) next();
        else active--;
      };
    },
  };
}

/**
 * `GET /v1/jobs/:id/result`'s body, `{ id, type, completedAt, expiresAt, result }`, sent without
 * ever holding the parsed result: a gzip-stored result is decompressed as a stream (off the event
 * loop's critical path, in zlib's thread pool) and its JSON bytes are spliced into the envelope as
 * they are, with no JSON.parse or JSON.stringify of the result. At most `concurrency` responses are
 * in flight, each held until the client has it (so a slow reader holds its place, not more memory).
 */
export function createResultStream({ readStored, deadline, concurrency, maxWaiting }: ResultStreamDeps) {
  const places = createSemaphore(concurrency, maxWaiting);

  return async function sendResult(res: Response, view: JobView): Promise<void> {
    const release = await places.acquire();
    if (!release) {
      throw new HttpError(503, 'server_busy', 'too many result reads at once; try again shortly', undefined, {
        'Retry-After': '1',
      });
    }
    try {
      const raw = await deadline(readStored(view.id));
      // Removed between the status read and now: as if the status read had come a moment later.
      if (raw === null) throw new HttpError(410, 'gone', 'the job and its result have been removed');
      const envelope = JSON.stringify({
        id: view.id,
        type: view.type,
        completedAt: view.finishedAt,
        expiresAt: view.expiresAt,
        result: null,
      });
      // `…,"result":null}` → `…,"result":` + the result's JSON + `}`.
      const head = envelope.slice(0, -'null}'.length);
      const body = resultBody(raw);
      res.status(200).type('application/json');
      await pipeline(async function* () {
        yield head;
        if (Buffer.isBuffer(body)) yield body;
        else yield* body;
        yield '}';
      }, res);
    } finally {
      release();
    }
  };
}

/**
 * The result's JSON from a stored `returnvalue`: a gunzip stream for `{ encoding: 'gzip' }` (the
 * only large kind), the value's JSON for `{ encoding: 'json', value }`, else the bytes as they are
 * (a result stored bare, or stored before results were encoded: the value itself). The inline kinds
 * are bounded by RESULT_COMPRESS_BYTES.
 */
function resultBody(raw: Buffer): Buffer | Readable {
  const stored: unknown = JSON.parse(raw.toString('utf8'));
  if (!isStoredResult(stored)) return raw;
  if (stored.encoding === 'json') return Buffer.from(JSON.stringify(stored.value ?? null));
  const gunzip = createGunzip();
  gunzip.end(Buffer.from(stored.data, 'base64'));
  return gunzip;
}
