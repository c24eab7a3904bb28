import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CsvTokenizer } from './csv-tokenizer.ts';
import { RecordBatcher } from './record-batcher.ts';

/** Every record of `text` as `[fields, 1-based start line, error]`. */
function tokenize(text: string, delimiter = ',', quote = '"') {
  const t = new CsvTokenizer(delimiter, quote);
  t.reset(text);
  const out: [string[], number, string | null][] = [];
  while (t.next()) out.push([Array.from({ length: t.count }, (_, i) => t.value(i)), t.line() + 1, t.error]);
  return out;
}

const cell = fc.oneof(
  fc.constantFrom('', 'a', '12', ' x ', 'x y', '-1.5', 'true'),
  fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r\n', ' ', ';', 'é') }),
);
/** A well-formed CSV: every field that needs quotes has them. */
const csv = fc
  .tuple(
    fc.array(fc.array(cell, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 20 }),
    fc.constantFrom('\n', '\r\n'),
    fc.boolean(),
  )
  .map(([rows, eol, quoteAll]) => ({
    rows: rows.filter((r) => !(r.length === 1 && r[0] === '')),
    text: rows
      .map((r) =>
        r.map((f) => (quoteAll || /[",\r\n]/.test(f) || f === '' ? `"${f.replaceAll('"', '""')}"` : f)).join(','),
      )
      .join(eol)
      .concat(eol),
  }));

describe('CsvTokenizer', () => {
  it('when a CSV is well formed, then its records equal those csv-parse reads', () => {
    fc.assert(
      fc.property(csv, ({ text }) => {
        const ours = tokenize(text).map(([fields, , error]) => {
          expect(error).toBeNull();
          return fields;
        });
        const theirs = parse(text, { relax_column_count: true, skip_empty_lines: true }) as string[][];
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 2000 },
    );
  });

  it('when records are laid out in a block, then each field sits column by column and extra fields spill nowhere', () => {
    fc.assert(
      fc.property(csv, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), ({ text }, width, rows) => {
        const plain = tokenize(text);
        const t = new CsvTokenizer(',', '"');
        t.layOut(width, rows);
        t.reset(text);
        const seen: string[][] = [];
        const stored = new Map<number, string>();
        while (t.next()) {
          const fields = Array.from({ length: Math.min(t.count, width) }, (_, i) => t.value(i));
          expect(fields).toEqual(plain[seen.length]?.[0].slice(0, width));
          seen.push(fields);
          if (t.count !== width) continue;
          for (let i = 0; i < width; i++) stored.set(i * rows + t.row, fields[i] as string);
          t.row = (t.row + 1) % rows;
          // Every stored field of the block is still where it was put.
          for (const [at, value] of stored) {
            const raw = text.slice(t.starts[at], t.ends[at]);
            expect(t.escaped[at] ? raw.replaceAll('""', '"') : raw).toBe(value);
          }
          if (t.row === 0) stored.clear();
        }
        expect(seen.length).toBe(plain.length);
      }),
      { numRuns: 1000 },
    );
  });

  it('when a record is malformed, then only that record is flagged, with the line it starts on', () => {
    const records = tokenize('a,b\n12" pizza,1\n"x\ny",2\n"ab"c,3\n4,5\r\n\r\n"open,6\n7\n');
    expect(records).toEqual([
      [['a', 'b'], 1, null],
      [['12" pizza', '1'], 2, 'a quote inside an unquoted field; the row is skipped'],
      [['x\ny', '2'], 3, null],
      [
        ['ab', '3'],
        5,
        'a closing quote is followed by "c" instead of a delimiter or the end of the line; the row is skipped',
      ],
      [['4', '5'], 6, null],
      [['open,6\n7\n'], 8, 'a quoted field is not closed before the end of the data; the rest is skipped'],
    ]);
  });

  it('when the delimiter and quote are others, then they are honoured', () => {
    expect(tokenize("a\tb\n'x\ty'\t'it''s'\n", '\t', "'").map((r) => r[0])).toEqual([
      ['a', 'b'],
      ['x\ty', "it's"],
    ]);
  });

  it('when the delimiter is above the quote or below it, then unquoted fields still end at it and a stray quote is found', () => {
    const stray = 'a quote inside an unquoted field; the row is skipped';
    for (const [delimiter, quote] of [
      ['|', '"'],
      [';', "'"],
      ['\t', "'"],
      [',', '~'],
    ] as const) {
      const records = tokenize(`zz${delimiter}9 x\nb${quote}c${delimiter}-1\n`, delimiter, quote);
      expect(records.map((r) => r[0])).toEqual([
        ['zz', '9 x'],
        [`b${quote}c`, '-1'],
      ]);
      expect(records.map((r) => r[2])).toEqual([null, stray]);
    }
  });
});

describe('RecordBatcher', () => {
  it('when bytes arrive in any chunks, then batches end on record boundaries and lose nothing', () => {
    fc.assert(
      fc.property(
        csv,
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }),
        ({ text }, sizes) => {
          const bytes = Buffer.from(text);
          const batcher = new RecordBatcher(0x22, 0x2c, 1 << 20);
          const batches: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const size = sizes[i % sizes.length] as number;
            const { batch, overflow } = batcher.push(bytes.subarray(at, at + size));
            expect(overflow).toBe(0);
            batches.push(Buffer.from(batch));
            at += size;
          }
          batches.push(batcher.flush());
          expect(Buffer.concat(batches).toString()).toBe(text);
          // Tokenized batch by batch, the records are those of the whole text.
          const pieces = batches.flatMap((b) => tokenize(b.toString()));
          expect(pieces).toEqual(
            tokenize(text).map(([fields, , error]) => [fields, expect.any(Number), error] as const),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('when a stray quote sits in an unquoted field, then the next newline still ends the batch', () => {
    const batcher = new RecordBatcher(0x22, 0x2c, 1 << 20);
    expect(batcher.push(Buffer.from('a,b\n12" pizza,1\n3,4')).batch.toString()).toBe('a,b\n12" pizza,1\n');
    expect(batcher.pending).toBe(3);
  });
});
