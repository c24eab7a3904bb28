/**
 * Cuts a byte stream into batches of whole records: each batch ends just after a newline that is
 * outside quotes, so its end is a safe resume offset and a parser given the batch alone sees only
 * complete records. Quotes are toggled per quote byte, which also holds for doubled ("") quotes.
 * For NDJSON pass `quote: null`: every newline ends a record.
 */
export class RecordBatcher {
  private carry: Buffer = Buffer.alloc(0);
  private inQuote = false;
  /** Bytes of `carry` already scanned (with `inQuote` the state after them). */
  private scanned = 0;

  constructor(
    private readonly quote: number | null,
    private readonly maxRecordBytes: number,
  ) {}

  /** Bytes held back as an incomplete record. */
  get pending(): number {
    return this.carry.length;
  }

  /**
   * Adds a chunk; returns the whole records it completes (possibly empty), and `overflow` when
   * the incomplete record grew past the limit and was dropped (an unclosed quote, a runaway line).
   */
  push(chunk: Uint8Array): { batch: Buffer; overflow: number } {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk);
    let boundary = -1;
    if (this.quote === null) {
      boundary = buf.lastIndexOf(0x0a);
    } else {
      let q = this.inQuote;
      const quote = this.quote;
      for (let i = this.scanned; i < buf.length; i++) {
        const b = buf[i];
        if (b === quote) q = !q;
        else if (b === 0x0a && !q) boundary = i;
      }
      this.inQuote = q;
    }
    const batch = boundary >= 0 ? buf.subarray(0, boundary + 1) : Buffer.alloc(0);
    // A copy, so the batch's memory is not pinned by the carry (and vice versa).
    this.carry = Buffer.from(buf.subarray(boundary + 1));
    this.scanned = this.carry.length;
    if (this.carry.length > this.maxRecordBytes) {
      const overflow = this.carry.length;
      this.carry = Buffer.alloc(0);
      this.scanned = 0;
      this.inQuote = false;
      return { batch, overflow };
    }
    return { batch, overflow: 0 };
  }

  /** The last record, which had no newline after it. */
  flush(): Buffer {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    this.scanned = 0;
    return rest;
  }
}

/** How many newlines `buf` holds. */
export function countLines(buf: Uint8Array): number {
  let n = 0;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = b.indexOf(0x0a); i !== -1; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}
