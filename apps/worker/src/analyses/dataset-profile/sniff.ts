import { parse } from 'csv-parse/sync';
import { classifyText } from './value-kind.ts';

export interface CsvDialect {
  delimiter: string;
  quote: string;
  header: boolean;
}

const DELIMITERS = [',', '\t', ';', '|'];

/** Complete lines of the sample (the last one may be cut by the chunk boundary), at most `max`. */
function sampleLines(sample: string, max: number): string[] {
  const lines = sample.split(/\r?\n/);
  if (!sample.endsWith('\n')) lines.pop();
  return lines.filter((l) => l.trim() !== '').slice(0, max);
}

/**
 * The delimiter that splits the first lines into the same number of fields (more than one), the
 * most consistent first, then the most fields. Quoted text is ignored while counting.
 */
export function sniffDelimiter(sample: string, quote: string): string {
  const lines = sampleLines(sample, 50);
  const unquoted = lines.map((l) =>
    l
      .split(quote)
      .filter((_, i) => i % 2 === 0)
      .join(''),
  );
  let best = { delimiter: ',', score: -1 };
  for (const delimiter of DELIMITERS) {
    const counts = unquoted.map((l) => l.split(delimiter).length - 1);
    const first = counts[0] ?? 0;
    if (first === 0) continue;
    const agreeing = counts.filter((c) => c === first).length / counts.length;
    const score = agreeing * 1000 + first;
    if (score > best.score) best = { delimiter, score };
  }
  return best.delimiter;
}

/** `"` unless the sample uses only `'` around fields. */
export function sniffQuote(sample: string): string {
  if (sample.includes('"')) return '"';
  return /(^|[,;\t|])'[^']*'(?=$|[,;\t|\r\n])/m.test(sample) ? "'" : '"';
}

/** Records the header sniff compares the first record with. */
const HEADER_SAMPLE_ROWS = 20;

/**
 * Whether the first record is a header. It is when none of its fields is empty or reads as a
 * number, boolean or date, and no name repeats: data rows of only such text are rare, headers of
 * numbers rarer still. It also is when none of its fields reads as a number, boolean or date, and
 * some column below it holds only such values under a name: a blank name above a column (the
 * index pandas writes) or a repeated one does not make a header data.
 */
export function sniffHeader(sample: string, delimiter: string, quote: string): boolean {
  const lines = sampleLines(sample, HEADER_SAMPLE_ROWS + 1);
  if (lines.length === 0) return true;
  let records: string[][];
  try {
    records = parse(lines.join('\n'), {
      delimiter,
      quote,
      relax_quotes: true,
      relax_column_count: true,
      skip_records_with_error: true,
    }) as string[][];
  } catch {
    return true;
  }
  const [first = [], ...rest] = records;
  const kindOf = (f: string) => (f.trim() === '' ? 'empty' : classifyText(f).kind);
  const kinds = first.map(kindOf);
  if (kinds.some((k) => k !== 'string' && k !== 'empty')) return false;
  if (!kinds.includes('empty') && new Set(first.map((f) => f.trim())).size === first.length) return true;
  // A name over a column of numbers, booleans or dates: the names' row is no data row of that column.
  if (rest.length === 0) return false;
  return kinds.some(
    (kind, i) =>
      kind === 'string' &&
      rest.every((record) => {
        const below = kindOf(record[i] ?? '');
        return below !== 'empty' && below !== 'string';
      }),
  );
}

export function sniffDialect(sample: string, given: Partial<CsvDialect> = {}): CsvDialect {
  const quote = given.quote ?? sniffQuote(sample);
  const delimiter = given.delimiter ?? sniffDelimiter(sample, quote);
  const header = given.header ?? sniffHeader(sample, delimiter, quote);
  return { delimiter, quote, header };
}
