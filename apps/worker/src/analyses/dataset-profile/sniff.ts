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

/**
 * A first record is a header when none of its fields is empty or reads as a number, boolean or
 * date, and no name repeats: data rows of only such text are rare, headers of numbers rarer still.
 */
export function sniffHeader(sample: string, delimiter: string, quote: string): boolean {
  const firstLine = sampleLines(sample, 1)[0];
  if (firstLine === undefined) return true;
  let first: string[];
  try {
    first =
      (parse(firstLine, { delimiter, quote, relax_quotes: true, relax_column_count: true }) as string[][])[0] ?? [];
  } catch {
    return true;
  }
  if (first.some((f) => f.trim() === '' || classifyText(f).kind !== 'string')) return false;
  return new Set(first.map((f) => f.trim())).size === first.length;
}

export function sniffDialect(sample: string, given: Partial<CsvDialect> = {}): CsvDialect {
  const quote = given.quote ?? sniffQuote(sample);
  const delimiter = given.delimiter ?? sniffDelimiter(sample, quote);
  const header = given.header ?? sniffHeader(sample, delimiter, quote);
  return { delimiter, quote, header };
}
