const LF = 0x0a;

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
  private carry: Buffer = Buffer.alloc(0);
  private inQuote = false;
  /** Bytes of `carry` already scanned (with `inQuote` the state after them). */
  private scanned = 0;

  constructor(
    private readonly quote: number | null,
    private readonly delimiter: number,
    private readonly maxRecordBytes: number,
  ) {}

  /** Whether the bytes pushed so far end inside a quoted field. */
  get quoted(): boolean {
    return this.inQuote;
  }

  /** Bytes held back as an incomplete record. */
  get pending(): number {
    return this.carry.length;
  }

  /**
   * Adds a chunk; returns the whole records it completes (possibly empty), and `overflow` when
   * the incomplete record grew past the limit and was dropped (an unclosed quote, a runaway line),
   * with the newlines it held (`overflowLines`).
   */
  push(chunk: Uint8Array): { batch: Buffer; overflow: number; overflowLines: number } {
    // The chunk is the caller's to keep: the batch may be a view of it, the carry never is.
    const buf =
      this.carry.length > 0
        ? Buffer.concat([this.carry, chunk])
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const { boundary, resumeAt } =
      this.quote === null ? { boundary: buf.lastIndexOf(LF), resumeAt: -1 } : this.scan(buf);
    const batch = buf.subarray(0, boundary + 1);
    this.carry = Buffer.from(buf.subarray(boundary + 1));
    this.scanned = resumeAt >= 0 ? resumeAt - (boundary + 1) : this.carry.length;
    if (this.carry.length > this.maxRecordBytes) {
      const overflow = this.carry.length;
      const overflowLines = countLines(this.carry);
      this.carry = Buffer.alloc(0);
      this.scanned = 0;
      this.inQuote = false;
      return { batch, overflow, overflowLines };
    }
    return { batch, overflow: 0, overflowLines: 0 };
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
          const nl = buf.lastIndexOf(LF);
          if (nl >= outside) boundary = nl;
          break;
        }
        const before = q === 0 ? LF : buf[q - 1];
        if (before === LF || before === this.delimiter) {
          const nl = q === 0 ? -1 : buf.lastIndexOf(LF, q - 1);
          if (nl >= outside) boundary = nl;
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
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    this.scanned = 0;
    this.inQuote = false;
    return rest;
  }
}

/** How many newlines `buf` holds. */
export function countLines(buf: Uint8Array): number {
  let n = 0;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = b.indexOf(LF); i !== -1; i = b.indexOf(LF, i + 1)) n++;
  return n;
}
