const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

/**
 * Cuts a byte stream into batches of whole records: each batch ends just after a newline that is
 * outside quotes, so its end is a safe resume offset and a parser given the batch alone sees only
 * complete records. For NDJSON pass `quote: null`: every newline ends a record.
 *
 * CSV quoting follows the same rule as {@link CsvTokenizer}: a quote opens a quoted field only at
 * the start of a field (the start of a record, or just after a delimiter); inside, a doubled quote
 * is a literal quote and any other quote closes the field. A stray quote in an unquoted field
 * (`12" pizza`) is data here and an error for that record alone in the tokenizer: it does not make
 * the rest of the file one endless quoted field. The scan jumps from quote to quote with
 * `indexOf`, so it costs almost nothing where quotes are rare.
 */
export class RecordBatcher {
  /**
   * The incomplete record: the first `carried` bytes of `store`, which has room to grow, so a long
   * record arriving in small pieces is copied about twice in all, not once per piece.
   */
  private store: Buffer = EMPTY;
  private carried = 0;
  private inQuote = false;
  /** Bytes of the carry already scanned (with `inQuote` the state after them). */
  private scanned = 0;

  /**
   * @param skipping - the stream starts inside a record that was too long (a resume in the middle
   *   of one): its bytes up to the next newline are dropped first.
   */
  constructor(
    private readonly quote: number | null,
    private readonly delimiter: number,
    private readonly maxRecordBytes: number,
    private skipping = false,
  ) {}

  /** Whether the bytes pushed so far end in a record that was too long, dropped to its line's end. */
  get skippingLongRecord(): boolean {
    return this.skipping;
  }

  /** Whether the bytes pushed so far end inside a quoted field. */
  get quoted(): boolean {
    return this.inQuote;
  }

  /** Bytes held back as an incomplete record. */
  get pending(): number {
    return this.carried;
  }

  /**
   * Adds a chunk; returns the whole records it completes (possibly empty), in `batch`.
   *
   * A record that grows past the limit (an unclosed quote, a runaway line) is dropped, with the
   * rest of its line: `overflow` is the bytes it had when it was dropped (0: none was), and from
   * there on every byte up to the next newline goes too, in this push or later ones, whatever the
   * quotes. So one long record is one `overflow`, and the records after it are read from the start
   * of the next line. `skipped` is the bytes dropped before `batch` (the end of such a line, its
   * newline included), `skippedLines` the newlines among them, and `overflowLines` the newlines
   * the dropped record held (quoted ones).
   */
  push(chunk: Uint8Array): {
    batch: Buffer;
    skipped: number;
    skippedLines: number;
    overflow: number;
    overflowLines: number;
  } {
    let skipped = 0;
    let skippedLines = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) return { batch: EMPTY, skipped: chunk.length, skippedLines: 0, overflow: 0, overflowLines: 0 };
      this.skipping = false;
      skipped = nl + 1;
      skippedLines = 1;
      chunk = chunk.subarray(skipped);
    }
    const inStore = this.carried > 0;
    const buf = this.append(chunk);
    // Only the bytes after the carry can hold a newline outside quotes: the carry has none.
    const { boundary, resumeAt } =
      this.quote === null ? { boundary: lastLf(buf, this.carried, buf.length), resumeAt: -1 } : this.scan(buf);
    const batch = buf.subarray(0, boundary + 1);
    const rest = buf.length - (boundary + 1);
    this.scanned = resumeAt >= 0 ? resumeAt - (boundary + 1) : rest;
    if (rest > this.maxRecordBytes) {
      const overflowLines = countLines(buf.subarray(boundary + 1));
      this.store = EMPTY;
      this.carried = 0;
      this.scanned = 0;
      this.inQuote = false;
      this.skipping = true;
      return { batch, skipped, skippedLines, overflow: rest, overflowLines };
    }
    // The chunk is the caller's to keep, and a batch in the store must stay intact until the
    // caller has read it: the rest moves to a store of its own, unless it is all of the store.
    if (boundary >= 0 || !inStore) this.store = Buffer.from(buf.subarray(boundary + 1));
    this.carried = rest;
    return { batch, skipped, skippedLines, overflow: 0, overflowLines: 0 };
  }

  /** The carry with `chunk` after it: the chunk itself when nothing is carried, else in the store. */
  private append(chunk: Uint8Array): Buffer {
    if (this.carried === 0) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const needed = this.carried + chunk.length;
    if (needed > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(2 * this.store.length, this.maxRecordBytes)));
      this.store.copy(grown, 0, 0, this.carried);
      this.store = grown;
    }
    this.store.set(chunk, this.carried);
    return this.store.subarray(0, needed);
  }

  /**
   * From `scanned` on, the last newline outside quotes (-1: none), and where to scan again next
   * time when the buffer ends on a quote inside a quoted field (doubled or closing: unknown yet).
   */
  private scan(buf: Buffer): { boundary: number; resumeAt: number } {
    const quote = this.quote as number;
    let boundary = -1;
    let resumeAt = -1;
    let inQuote = this.inQuote;
    let i = this.scanned;
    /** Where the current stretch outside quotes began: newlines from there on are record ends. */
    let outside = i;
    for (;;) {
      const q = buf.indexOf(quote, i);
      if (!inQuote) {
        if (q === -1) {
          const nl = lastLf(buf, outside, buf.length);
          if (nl !== -1) boundary = nl;
          break;
        }
        const before = q === 0 ? LF : buf[q - 1];
        if (before === LF || before === this.delimiter) {
          const nl = lastLf(buf, outside, q);
          if (nl !== -1) boundary = nl;
          inQuote = true;
        }
        i = q + 1;
      } else {
        if (q === -1) break;
        if (q + 1 === buf.length) {
          resumeAt = q;
          break;
        }
        if (buf[q + 1] === quote) {
          i = q + 2;
          continue;
        }
        inQuote = false;
        i = q + 1;
        outside = i;
      }
    }
    this.inQuote = inQuote;
    return { boundary, resumeAt };
  }

  /** The last record, which had no newline after it. */
  flush(): Buffer {
    const rest = this.store.subarray(0, this.carried);
    this.store = EMPTY;
    this.carried = 0;
    this.scanned = 0;
    this.inQuote = false;
    this.skipping = false;
    return rest;
  }
}

/**
 * The last newline in `buf[from, to)` (-1: none). Searching only there keeps a long record
 * arriving in small pieces from being searched again from its start at every piece.
 */
function lastLf(buf: Buffer, from: number, to: number): number {
  if (to <= from) return -1;
  const i = buf.subarray(from, to).lastIndexOf(LF);
  return i === -1 ? -1 : from + i;
}

/** How many newlines `buf` holds. */
export function countLines(buf: Uint8Array): number {
  let n = 0;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = b.indexOf(LF); i !== -1; i = b.indexOf(LF, i + 1)) n++;
  return n;
}
