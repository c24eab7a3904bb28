const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits decoded CSV text (whole records, from {@link RecordBatcher}) into records and fields.
 * Pull-style and allocation-free: {@link next} advances to the next record and leaves its fields as
 * offsets into the text (`starts`, `ends`), so a profiler reads each value where it lies and makes
 * a string only for values that need one.
 *
 * Written here instead of taken from npm: csv-parse, papaparse and udsv all hand back an array of
 * strings per record, and that alone caps them below the profiler's budget (parse-only, on the
 * benchmark's CSV: csv-parse ~9 MB/s, papaparse ~12–16, udsv ~16–23; see docs/dataset-profile.md).
 * The profiler needs less than they offer: no streaming state, no column typing, no options
 * beyond delimiter and quote.
 *
 * Rules (RFC 4180, as csv-parse applied them here before):
 * - a record ends at `\n` or `\r\n` outside quotes; empty lines are skipped;
 * - a field is quoted when it starts with the quote; inside, a doubled quote is a literal quote
 *   (`escaped` is set, see {@link value}), and the closing quote must be followed by the delimiter
 *   or the end of the record;
 * - a quote inside an unquoted field, or text after a closing quote, makes the record malformed
 *   (`error`); it is skipped whole and the next record starts after its newline;
 * - a quoted field still open at the end of the text makes the rest of it one malformed record.
 */
export class CsvTokenizer {
  /** The current record's fields: field `i` is `text.slice(starts[i], ends[i])`, quotes removed. */
  starts = new Int32Array(64);
  ends = new Int32Array(64);
  /** 1 when field `i` holds doubled quotes (read it through {@link value}). */
  escaped = new Uint8Array(64);
  /** Fields in the current record. */
  count = 0;
  /** Why the current record is malformed, or null. */
  error: string | null = null;
  /** Where the current record starts in the text. */
  recordStart = 0;
  private text = '';
  private pos = 0;
  private lineAt = 0;
  private linesBefore = 0;
  private readonly delimiter: number;
  private readonly quote: number;
  private readonly quoteChar: string;
  private readonly doubled: string;

  constructor(delimiter: string, quote: string) {
    this.delimiter = delimiter.charCodeAt(0);
    this.quote = quote.charCodeAt(0);
    this.quoteChar = quote;
    this.doubled = quote + quote;
  }

  /** Starts on `text` at `from` (past a byte order mark, say). */
  reset(text: string, from = 0): void {
    this.text = text;
    this.pos = from;
    this.lineAt = 0;
    this.linesBefore = 0;
    this.count = 0;
    this.error = null;
  }

  /** The current record's line within the text, 0-based (newlines before it; counted lazily, so errors alone pay). */
  line(): number {
    const text = this.text;
    let n = this.linesBefore;
    for (let i = text.indexOf('\n', this.lineAt); i !== -1 && i < this.recordStart; i = text.indexOf('\n', i + 1)) n++;
    this.linesBefore = n;
    this.lineAt = this.recordStart;
    return n;
  }

  /** Field `i` as a string, doubled quotes undone. */
  value(i: number): string {
    const raw = this.text.slice(this.starts[i], this.ends[i]);
    return this.escaped[i] ? raw.replaceAll(this.doubled, this.quoteChar) : raw;
  }

  /** Advances to the next record; `false` at the end of the text. */
  next(): boolean {
    const text = this.text;
    const len = text.length;
    const delimiter = this.delimiter;
    const quote = this.quote;
    let pos = this.pos;
    // Empty lines are no records.
    for (;;) {
      if (pos >= len) {
        this.pos = pos;
        return false;
      }
      const c = text.charCodeAt(pos);
      if (c === LF) pos++;
      else if (c === CR && text.charCodeAt(pos + 1) === LF) pos += 2;
      else break;
    }
    this.recordStart = pos;
    this.error = null;
    let count = 0;
    for (;;) {
      if (count === this.starts.length) this.grow();
      let c = text.charCodeAt(pos);
      if (c === quote) {
        const start = pos + 1;
        let escaped = 0;
        let close = text.indexOf(this.quoteChar, start);
        while (close !== -1 && text.charCodeAt(close + 1) === quote) {
          escaped = 1;
          close = text.indexOf(this.quoteChar, close + 2);
        }
        if (close === -1) {
          this.error ??= 'a quoted field is not closed before the end of the data; the rest is skipped';
          this.starts[count] = start;
          this.ends[count] = len;
          this.escaped[count++] = escaped;
          pos = len;
          break;
        }
        this.starts[count] = start;
        this.ends[count] = close;
        this.escaped[count++] = escaped;
        pos = close + 1;
        c = text.charCodeAt(pos);
        if (c === delimiter) {
          pos++;
          continue;
        }
        if (pos >= len || c === LF) {
          pos++;
          break;
        }
        if (c === CR && text.charCodeAt(pos + 1) === LF) {
          pos += 2;
          break;
        }
        this.error ??= `a closing quote is followed by ${JSON.stringify(text[pos])} instead of a delimiter or the end of the line; the row is skipped`;
        // The rest of the field is unquoted text, read on as such (the batcher reads it alike).
        while (pos < len) {
          c = text.charCodeAt(pos);
          if (c === delimiter || c === LF) break;
          pos++;
        }
      } else {
        const start = pos;
        while (pos < len) {
          c = text.charCodeAt(pos);
          if (c === delimiter || c === LF) break;
          if (c === quote) this.error ??= 'a quote inside an unquoted field; the row is skipped';
          pos++;
        }
        this.starts[count] = start;
        this.ends[count] = c === LF && pos > start && text.charCodeAt(pos - 1) === CR ? pos - 1 : pos;
        this.escaped[count++] = 0;
      }
      if (pos < len && c === delimiter) {
        pos++;
        continue;
      }
      pos++;
      break;
    }
    this.count = count;
    this.pos = pos;
    return true;
  }

  private grow(): void {
    const size = this.starts.length * 2;
    const starts = new Int32Array(size);
    const ends = new Int32Array(size);
    const escaped = new Uint8Array(size);
    starts.set(this.starts);
    ends.set(this.ends);
    escaped.set(this.escaped);
    this.starts = starts;
    this.ends = ends;
    this.escaped = escaped;
  }
}
