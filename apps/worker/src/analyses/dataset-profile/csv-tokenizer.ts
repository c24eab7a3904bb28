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
  /**
   * The current record's fields: field `i` is `text.slice(starts[at], ends[at])`, quotes removed,
   * where `at = i * stride + row` (see {@link layOut}; `i` itself until then).
   */
  starts = new Int32Array(64);
  ends = new Int32Array(64);
  /** 1 when the field at `at` holds doubled quotes (read it through {@link value}). */
  escaped = new Uint8Array(64);
  /** Fields in the current record. */
  count = 0;
  /** Fields of the current record with doubled quotes. */
  escapedCount = 0;
  /** The row of the block the next record is stored in (see {@link layOut}). */
  row = 0;
  private stride = 1;
  /** Fields stored per record; a record with more has them counted, not stored. */
  private capacity = 64;
  private growable = true;
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
  /** The greatest of the delimiter, the quote and LF: a character above it ends no unquoted field. */
  private readonly special: number;
  private readonly quoteChar: string;
  private readonly doubled: string;

  constructor(delimiter: string, quote: string) {
    this.delimiter = delimiter.charCodeAt(0);
    this.quote = quote.charCodeAt(0);
    this.special = Math.max(this.delimiter, this.quote, LF);
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

  /**
   * From now on stores the fields of `rows` records of `width` fields column by column, as a
   * block: field `i` of the record at {@link row} `r` at `i * rows + r`. A reader then walks one
   * column's values of the block in a row, and no record's offsets are copied out first.
   */
  layOut(width: number, rows: number): void {
    this.stride = rows;
    this.capacity = width;
    this.growable = false;
    this.row = 0;
    // One slot more, past the block: where a record's fields beyond `width` are put, unread.
    this.starts = new Int32Array(width * rows + 1);
    this.ends = new Int32Array(width * rows + 1);
    this.escaped = new Uint8Array(width * rows + 1);
  }

  /** Reads the current record again at the next {@link next} (after {@link layOut}, say). */
  again(): void {
    this.pos = this.recordStart;
  }

  /** Field `i` of the current record as a string, doubled quotes undone. */
  value(i: number): string {
    const at = i * this.stride + this.row;
    const raw = this.text.slice(this.starts[at], this.ends[at]);
    return this.escaped[at] ? raw.replaceAll(this.doubled, this.quoteChar) : raw;
  }

  /** Advances to the next record; `false` at the end of the text. */
  next(): boolean {
    const text = this.text;
    const len = text.length;
    const delimiter = this.delimiter;
    const quote = this.quote;
    const special = this.special;
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
    const { stride, row } = this;
    let count = 0;
    let escapedCount = 0;
    for (;;) {
      if (count === this.capacity && this.growable) this.grow();
      // Past the capacity the field is read into the spare slot (see layOut), never read back.
      const at = count < this.capacity ? count * stride + row : this.starts.length - 1;
      let c = text.charCodeAt(pos);
      if (c === quote) {
        const start = pos + 1;
        let escaped = 0;
        let close = text.indexOf(this.quoteChar, start);
        while (close !== -1 && text.charCodeAt(close + 1) === quote) {
          escaped = 1;
          close = text.indexOf(this.quoteChar, close + 2);
        }
        escapedCount += escaped;
        if (close === -1) {
          this.error ??= 'a quoted field is not closed before the end of the data; the rest is skipped';
          this.starts[at] = start;
          this.ends[at] = len;
          this.escaped[at] = escaped;
          count++;
          pos = len;
          break;
        }
        this.starts[at] = start;
        this.ends[at] = close;
        this.escaped[at] = escaped;
        count++;
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
          // Most characters (letters, digits) are above all three: one comparison each.
          if (c <= special) {
            if (c === delimiter || c === LF) break;
            if (c === quote) this.error ??= 'a quote inside an unquoted field; the row is skipped';
          }
          pos++;
        }
        this.starts[at] = start;
        this.ends[at] = c === LF && pos > start && text.charCodeAt(pos - 1) === CR ? pos - 1 : pos;
        this.escaped[at] = 0;
        count++;
      }
      if (pos < len && c === delimiter) {
        pos++;
        continue;
      }
      pos++;
      break;
    }
    this.count = count;
    this.escapedCount = escapedCount;
    this.pos = pos;
    return true;
  }

  private grow(): void {
    const size = this.starts.length * 2;
    this.capacity = size;
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
