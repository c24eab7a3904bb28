import { isAscii } from 'node:buffer';
import type { DatasetProfileInput, DatasetProfileResult } from '@longhaul/shared/analyses/dataset-profile';
import { DATASET_MAX_COLUMNS } from '@longhaul/shared/analyses/dataset-profile-limits';
import { type ColumnState, ColumnStats } from './column-stats.ts';
import { CsvTokenizer } from './csv-tokenizer.ts';
import { DatasetError } from './dataset-error.ts';
import { countLines, RecordBatcher } from './record-batcher.ts';
import { type CsvDialect, sniffDialect } from './sniff.ts';
import { Utf8Validator } from './utf8-validator.ts';
import { classifyJson, FieldClassifier } from './value-kind.ts';

export type DatasetFormat = 'csv' | 'ndjson';

/** The input options the profiler needs, plus a format hint from the URL or its Content-Type. */
export type ProfileOptions = Pick<
  DatasetProfileInput,
  'format' | 'encoding' | 'csv' | 'columns' | 'topK' | 'bins' | 'nullValues' | 'maxErrors'
> & { formatHint?: DatasetFormat | undefined };

/** Everything needed to resume at `offset`: a record boundary, all rows before it counted. */
export interface ProfilerState {
  /**
   * 2: number keys are hashed by their bits (`hashNumber`). A state of 1 hashed them by their
   * text, so its HyperLogLogs and Misra–Gries tables do not mix with this version's.
   */
  v: 2;
  format: DatasetFormat;
  dialect: CsvDialect | null;
  /** CSV: the names of all fields, once known (from the header, or `column_N`). */
  names: string[] | null;
  offset: number;
  lines: number;
  rows: number;
  errors: { count: number; first: { line: number; message: string }[] };
  columns: ColumnState[];
  /** Whether the parse error about the column cap is already listed (so a resume does not list it again). */
  capNoted?: boolean;
  /** Records skipped for being longer than MAX_RECORD_BYTES. */
  longRecords?: number;
  /** Saved in the middle of such a record: a resume drops its bytes up to the next newline. */
  skipping?: boolean;
}

export type ProfileSummary = Omit<
  DatasetProfileResult,
  'parallel' | 'parts' | 'reason' | 'resumedFrom' | 'attempts' | 'durationMs'
>;

/**
 * The format and dialect are guessed from exactly this many first bytes (or the whole dataset, if
 * smaller), however the bytes arrive: a parallel profile sniffs the same bytes from a Range request.
 */
export const SNIFF_BYTES = 64 * 1024;
/**
 * A record or line longer than this is malformed: it is skipped to the end of its line and counted
 * as one parse error, so one bad quote cannot eat all memory.
 */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;
/** The most bytes handed to the batcher at once (see `feed`). */
const PIECE_BYTES = 64 * 1024;
/** CSV records per block, whose fields are then counted column by column (see `csvBatch`). */
const BLOCK_ROWS = 256;

function formatOf(sample: Uint8Array): DatasetFormat {
  for (const b of sample) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0xef || b === 0xbb || b === 0xbf) continue;
    return b === 0x7b ? 'ndjson' : 'csv';
  }
  return 'csv';
}

/** Names for CSV fields: the header's (trimmed; blanks and repeats made unique) or `column_N`. */
function fieldNames(header: string[] | null, width: number): string[] {
  const seen = new Map<string, number>();
  return Array.from({ length: width }, (_, i) => {
    const base = header?.[i]?.trim() || `column_${i + 1}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}_${n}`;
  });
}

/**
 * Streams a CSV or NDJSON dataset through per-column statistics. Synchronous per chunk (it runs in
 * a worker thread), resumable from {@link state} at a record boundary, and bounded in memory: the
 * columns' sketches, a few parse errors, and at most one record being parsed.
 */
export class Profiler {
  private format: DatasetFormat | null;
  private dialect: CsvDialect | null;
  private names: string[] | null;
  /** Absolute byte offset just past the last record counted. */
  private offset: number;
  private lines: number;
  private rows: number;
  private readonly errors: ProfilerState['errors'];
  private readonly columns = new Map<string, ColumnStats>();
  /** CSV: for each field position, its column's statistics (undefined: not profiled). */
  private fieldStats: (ColumnStats | undefined)[] = [];
  private readonly nulls: Set<string>;
  private readonly classifier: FieldClassifier;
  /**
   * CSV: once the width is known, it stores a block of records' fields column by column (field
   * `i` of the block's row `r` at `i * BLOCK_ROWS + r`, see `CsvTokenizer.layOut`), as offsets
   * into the batch's text; its `row` is the number of records in the block so far.
   */
  private tokenizer: CsvTokenizer | null = null;
  /** The text of the block's fields with doubled quotes (quotes undone), emptied as it is read. */
  private readonly blockText: (string | undefined)[] = [];
  private readonly utf8: Utf8Validator | null;
  /** Where this run started reading (the resume offset), and how many bytes it was given since. */
  private readonly start: number;
  private written = 0;
  /** Bytes handed to the batcher so far, absolute. */
  private fed: number;
  private sample: Uint8Array[] = [];
  private sampleBytes = 0;
  private batcher: RecordBatcher | null = null;
  private columnCapNoted: boolean;
  private longRecords: number;
  /** Whether the run resumes in the middle of a record too long to keep (see RecordBatcher). */
  private readonly resumesSkipping: boolean;
  /** Whether the input ended inside a quoted field (known once {@link end} ran). */
  private endedInQuote = false;

  constructor(
    private readonly options: ProfileOptions,
    restored?: ProfilerState,
  ) {
    this.format = restored?.format ?? options.format ?? null;
    this.dialect = restored?.dialect ?? null;
    this.names = restored?.names ?? null;
    this.offset = restored?.offset ?? 0;
    this.start = this.offset;
    this.fed = this.offset;
    this.lines = restored?.lines ?? 0;
    this.rows = restored?.rows ?? 0;
    this.errors = restored?.errors ?? { count: 0, first: [] };
    this.columnCapNoted = restored?.capNoted ?? false;
    this.longRecords = restored?.longRecords ?? 0;
    this.resumesSkipping = restored?.skipping ?? false;
    this.nulls = new Set(options.nullValues);
    this.classifier = new FieldClassifier(options.nullValues);
    for (const c of restored?.columns ?? []) this.columns.set(c.name, ColumnStats.fromState(c));
    for (const name of options.columns ?? [])
      if (!this.columns.has(name)) this.columns.set(name, new ColumnStats(name));
    this.utf8 = options.encoding === 'utf-8' ? new Utf8Validator(this.offset) : null;
    if (this.names) this.mapFields();
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Bytes read so far, absolute (including those before the resume offset). */
  get bytesRead(): number {
    return this.start + this.written;
  }

  write(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.written === 0 && this.start === 0) this.refuseUtf16(chunk);
    this.written += chunk.length;
    this.utf8?.check(chunk);
    if (!this.started()) {
      this.sample.push(chunk);
      this.sampleBytes += chunk.length;
      if (this.sampleBytes >= SNIFF_BYTES) this.begin();
      return;
    }
    this.feed(chunk);
  }

  /** Ends the input: counts the last record (one with no newline after it). */
  async end(): Promise<void> {
    this.utf8?.end();
    if (!this.started()) {
      if (this.start === 0 && this.sampleBytes === 0) throw new DatasetError('the dataset is empty (0 bytes)');
      this.begin();
    }
    this.endedInQuote = this.batcher?.quoted ?? false;
    const rest = this.batcher?.flush();
    if (rest && rest.length > 0) this.records(rest);
    if (this.start === 0 && this.rows === 0 && this.names === null && this.errors.count === 0) {
      throw new DatasetError('the dataset has no records (only blank lines)');
    }
  }

  state(): ProfilerState {
    return {
      v: 2,
      format: this.format ?? 'csv',
      dialect: this.dialect,
      names: this.names,
      offset: this.offset,
      lines: this.lines,
      rows: this.rows,
      errors: { count: this.errors.count, first: [...this.errors.first] },
      columns: [...this.columns.values()].map((c) => c.toState()),
      capNoted: this.columnCapNoted,
      longRecords: this.longRecords,
      ...(this.batcher?.skippingLongRecord ? { skipping: true } : {}),
    };
  }

  /**
   * Whether the input ended inside a quoted field: for a byte range of a CSV, that its end (so the
   * next range's start) is no record boundary. Meaningful after {@link end}.
   */
  get endsInQuote(): boolean {
    return this.endedInQuote;
  }

  /** Whether {@link state} can be saved now: the format is known, so a resume needs no sniffing. */
  resumable(): boolean {
    return this.started() && this.offset > 0;
  }

  summary(): ProfileSummary {
    return {
      format: this.format ?? 'csv',
      dialect: this.format === 'csv' ? this.dialect : null,
      rowCount: this.rows,
      bytes: this.bytesRead,
      columns: [...this.columns.values()].map((c) =>
        c.finalize(this.rows, { topK: this.options.topK, bins: this.options.bins }),
      ),
      parseErrors: { count: this.errors.count, first: [...this.errors.first] },
    };
  }

  private started(): boolean {
    return this.batcher !== null;
  }

  private refuseUtf16(chunk: Uint8Array): void {
    const [a, b] = chunk;
    if ((a === 0xff && b === 0xfe) || (a === 0xfe && b === 0xff)) {
      throw new DatasetError('the dataset is UTF-16 (it starts with a UTF-16 byte order mark); re-encode it as UTF-8');
    }
    if (chunk.subarray(0, 4096).includes(0)) {
      throw new DatasetError(
        'the dataset has NUL bytes near its start: it is binary or UTF-16, not CSV or NDJSON text',
      );
    }
  }

  /** Guesses what is not given from the sample, then parses the sample and everything after. */
  private begin(): void {
    const sample = Buffer.concat(this.sample);
    this.sample = [];
    this.sampleBytes = 0;
    const sniffed = sample.subarray(0, SNIFF_BYTES);
    this.format ??= this.options.formatHint ?? formatOf(sniffed);
    if (this.format === 'csv' && !this.dialect) {
      const encoding = this.options.encoding === 'latin1' ? 'latin1' : 'utf8';
      const text = sniffed.toString(encoding);
      if (this.start === 0 && text.trim() === '' && sample.toString(encoding).trim() === '') {
        throw new DatasetError('the dataset is empty (only blank lines)');
      }
      this.dialect = sniffDialect(text, this.options.csv ?? {});
    }
    let quote: number | null = null;
    let delimiter = 0x2c;
    if (this.format === 'csv') {
      const dialect = this.dialect as CsvDialect;
      const encoding = this.options.encoding === 'latin1' ? 'latin1' : 'utf8';
      const quoteBytes = Buffer.from(dialect.quote, encoding);
      if (quoteBytes.length !== 1) {
        throw new DatasetError(
          `the quote ${JSON.stringify(dialect.quote)} is not one byte in ${encoding}; choose an ASCII quote`,
        );
      }
      quote = quoteBytes[0] as number;
      // A delimiter of several UTF-8 bytes is known to the batcher by its last byte: it only asks
      // whether a quote starts a field, and a false yes needs a stray quote right after such a byte.
      delimiter = Buffer.from(dialect.delimiter, encoding).at(-1) as number;
      this.tokenizer = new CsvTokenizer(dialect.delimiter, dialect.quote);
      if (this.names) this.tokenizer.layOut(this.names.length, BLOCK_ROWS);
    }
    this.batcher = new RecordBatcher(quote, delimiter, MAX_RECORD_BYTES, this.resumesSkipping);
    if (sample.length > 0) this.feed(sample);
  }

  /**
   * Hands `chunk` to the batcher in pieces of at most {@link PIECE_BYTES}, so each decoded batch
   * stays a small string in V8's young generation: a string of hundreds of KiB goes to large-object
   * space, a fresh mapping each time, and decoding into it cost several times more.
   */
  private feed(chunk: Uint8Array): void {
    const batcher = this.batcher as RecordBatcher;
    for (let at = 0; at < chunk.length; at += PIECE_BYTES) {
      const piece = chunk.subarray(at, at + PIECE_BYTES);
      this.fed += piece.length;
      const { batch, skipped, skippedLines, overflow, overflowLines } = batcher.push(piece);
      // The end of a record too long to keep: its line ends here, and the next record starts after it.
      this.offset += skipped;
      this.lines += skippedLines;
      if (batch.length > 0) this.records(batch);
      if (overflow > 0) {
        this.longRecords++;
        this.error(
          this.lines + 1,
          `a record is longer than ${MAX_RECORD_BYTES} bytes (an unclosed quote?); it is skipped to the end of its line`,
        );
        this.lines += overflowLines;
        this.offset = this.fed - batcher.pending;
      }
    }
  }

  /** Counts a batch of whole records that starts at {@link offset}. */
  private records(batch: Buffer): void {
    if (this.format === 'ndjson') this.ndjsonBatch(batch);
    else this.csvBatch(batch);
  }

  private error(line: number, message: string): void {
    this.errors.count++;
    if (this.errors.first.length < this.options.maxErrors) this.errors.first.push({ line, message });
  }

  /**
   * Tokenizes and counts a batch of whole CSV records: each field is classified where it lies in
   * the decoded text and goes straight into its column (see FieldClassifier), and a record is
   * counted only once its field count is known to match. Records are gathered in blocks of
   * {@link BLOCK_ROWS} and counted column by column: a column's values still arrive in row order,
   * and its statistics stay in the CPU's cache for a block, where a record visits every column's
   * in turn.
   */
  private csvBatch(batch: Buffer): void {
    const tokenizer = this.tokenizer as CsvTokenizer;
    const baseLine = this.lines;
    const bom = this.offset === 0 && batch[0] === 0xef && batch[1] === 0xbb && batch[2] === 0xbf ? 3 : 0;
    // ASCII (most CSV) decodes as latin1 alike, and that is a plain copy, several times faster than utf8.
    const latin1 = this.options.encoding === 'latin1' || isAscii(batch);
    const text = batch.toString(latin1 ? 'latin1' : 'utf8', bom);
    tokenizer.reset(text);
    let width = this.names?.length ?? 0;
    while (tokenizer.next()) {
      if (tokenizer.error !== null) {
        this.error(baseLine + tokenizer.line() + 1, tokenizer.error);
        continue;
      }
      const count = tokenizer.count;
      if (!this.names) {
        const first = Array.from({ length: count }, (_, i) => tokenizer.value(i));
        this.names = fieldNames(this.dialect?.header ? first : null, count);
        this.mapFields();
        width = count;
        tokenizer.layOut(width, BLOCK_ROWS);
        // A first record of data is read again, into the block.
        if (!this.dialect?.header) tokenizer.again();
        continue;
      }
      if (count !== width) {
        this.error(baseLine + tokenizer.line() + 1, `expected ${width} fields, found ${count}; the row is skipped`);
        continue;
      }
      this.rows++;
      if (tokenizer.escapedCount > 0) {
        for (let i = 0; i < width; i++) {
          const at = i * BLOCK_ROWS + tokenizer.row;
          if (tokenizer.escaped[at]) this.blockText[at] = tokenizer.value(i);
        }
      }
      if (++tokenizer.row === BLOCK_ROWS) this.countBlock(text, width);
    }
    this.countBlock(text, width);
    this.lines = baseLine + countLines(batch);
    this.offset += batch.length;
  }

  /** Counts the block's fields column by column, then empties it. */
  private countBlock(text: string, width: number): void {
    const tokenizer = this.tokenizer as CsvTokenizer;
    const { row: rows, starts, ends, escaped: quoted } = tokenizer;
    if (rows === 0) return;
    const classifier = this.classifier;
    const fieldStats = this.fieldStats;
    for (let i = 0; i < width; i++) {
      const stats = fieldStats[i];
      if (stats === undefined) continue;
      const end = i * BLOCK_ROWS + rows;
      for (let at = i * BLOCK_ROWS; at < end; at++) {
        let known: boolean;
        if (quoted[at]) {
          known = classifier.classifyString(this.blockText[at] as string);
          this.blockText[at] = undefined;
        } else known = classifier.classify(text, starts[at] as number, ends[at] as number);
        if (known) stats.addValue(classifier);
      }
    }
    tokenizer.row = 0;
  }

  /** CSV: binds field positions to columns; refuses requested columns the header lacks. */
  private mapFields(): void {
    const names = this.names ?? [];
    const wanted = this.options.columns;
    if (wanted) {
      const unknown = wanted.filter((w) => !names.includes(w));
      if (unknown.length > 0) {
        throw new DatasetError(
          `unknown column(s) ${unknown.map((u) => JSON.stringify(u)).join(', ')}; the dataset has ${names
            .slice(0, 20)
            .map((n) => JSON.stringify(n))
            .join(', ')}${names.length > 20 ? ', …' : ''}`,
        );
      }
    }
    this.fieldStats = names.map((name, i) => {
      if (wanted && !wanted.includes(name)) return undefined;
      if (!wanted && i >= DATASET_MAX_COLUMNS) {
        this.noteColumnCap(names.length);
        return undefined;
      }
      let stats = this.columns.get(name);
      if (!stats) {
        stats = new ColumnStats(name);
        this.columns.set(name, stats);
      }
      return stats;
    });
  }

  private noteColumnCap(width: number): void {
    if (this.columnCapNoted) return;
    this.columnCapNoted = true;
    this.error(
      1,
      `the dataset has ${width} or more columns; only the first ${DATASET_MAX_COLUMNS} are profiled (choose with "columns")`,
    );
  }

  private ndjsonBatch(batch: Buffer): void {
    let from = 0;
    if (this.offset === 0 && batch[0] === 0xef && batch[1] === 0xbb && batch[2] === 0xbf) from = 3;
    while (from < batch.length) {
      const nl = batch.indexOf(0x0a, from);
      const end = nl === -1 ? batch.length : nl;
      this.ndjsonLine(batch.subarray(from, end));
      from = end + 1;
    }
    this.offset += batch.length;
  }

  private ndjsonLine(bytes: Buffer): void {
    this.lines++;
    const text = bytes.toString(this.options.encoding === 'latin1' ? 'latin1' : 'utf8').trim();
    if (text === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.error(this.lines, `invalid JSON: ${(err as Error).message}; the line is skipped`);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.error(this.lines, 'not a JSON object; the line is skipped');
      return;
    }
    this.rows++;
    const wanted = this.options.columns;
    for (const [name, field] of Object.entries(value)) {
      let stats = this.columns.get(name);
      if (!stats) {
        if (wanted) continue;
        if (this.columns.size >= DATASET_MAX_COLUMNS) {
          this.noteColumnCap(this.columns.size + 1);
          continue;
        }
        stats = new ColumnStats(name);
        this.columns.set(name, stats);
      }
      if (typeof field === 'string' && this.nulls.has(field.trim())) continue;
      const c = classifyJson(field);
      if (c) stats.add(c);
    }
  }
}
