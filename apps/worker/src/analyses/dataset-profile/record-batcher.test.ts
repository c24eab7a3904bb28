import { datasetProfileInput } from '@longhaul/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_RECORD_BYTES, Profiler, type ProfilerState, type ProfileSummary } from './profiler.ts';
import { RecordBatcher } from './record-batcher.ts';

const QUOTE = 0x22;
const COMMA = 0x2c;

/** Pushes `text` through a batcher in pieces of `piece` bytes; what came out, with the drops. */
function run(text: string, piece: number, maxRecordBytes: number) {
  const batcher = new RecordBatcher(QUOTE, COMMA, maxRecordBytes);
  const bytes = Buffer.from(text);
  let out = '';
  let skipped = 0;
  let skippedLines = 0;
  const overflows: number[] = [];
  for (let at = 0; at < bytes.length; at += piece) {
    const r = batcher.push(bytes.subarray(at, at + piece));
    skipped += r.skipped;
    skippedLines += r.skippedLines;
    out += r.batch.toString();
    if (r.overflow > 0) overflows.push(r.overflow);
  }
  out += batcher.flush().toString();
  return { out, skipped, skippedLines, overflows };
}

describe('record batcher', () => {
  it('when text arrives in pieces of any size, then the batches put together are the text, each ending a record', () => {
    const text = fc
      .array(fc.constantFrom('a', 'b', ',', '"', '\n', '""', '\r\n', 'xyz'), { maxLength: 400 })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 64 }), (t, piece) => {
        const whole = run(t, t.length + 1, 1 << 20).out;
        const pieces = run(t, piece, 1 << 20);
        expect(pieces.out).toBe(t);
        expect(whole).toBe(t);
        // Every batch ends with a newline, and none ends inside a quoted field: the quotes before
        // each end are balanced (doubled quotes count twice, so an open quote leaves an odd count).
        const batcher = new RecordBatcher(QUOTE, COMMA, 1 << 20);
        const bytes = Buffer.from(t);
        let fed = '';
        for (let at = 0; at < bytes.length; at += piece) {
          const { batch } = batcher.push(bytes.subarray(at, at + piece));
          fed += batch.toString();
          if (batch.length > 0) {
            expect(batch.at(-1)).toBe(0x0a);
            if (!/[^,\n]"|"[^,\n"]/.test(fed)) expect((fed.match(/"/g) ?? []).length % 2).toBe(0);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('record batcher: records longer than the limit', () => {
  it('when a line grows past the limit, then it is dropped once with the rest of its line, and the next line comes whole', () => {
    const text = `a,b\n${'x'.repeat(40)},y\nc,d\ne,f\n`;
    // Pieces no longer than the limit, as the profiler hands them (a record that arrives whole
    // with its newline is the tokenizer's to judge).
    for (const piece of [1, 3, 7, 16]) {
      const { out, overflows, skipped, skippedLines } = run(text, piece, 16);
      expect(out, `pieces of ${piece}`).toBe('a,b\nc,d\ne,f\n');
      expect(overflows, `pieces of ${piece}`).toHaveLength(1);
      // Every byte of the long line is either in the overflow or skipped after it.
      expect((overflows[0] ?? 0) + skipped, `pieces of ${piece}`).toBe(43);
      expect(skippedLines, `pieces of ${piece}`).toBe(1);
    }
  });

  it('when a quote is never closed, then its record is dropped at the limit, with the rest of that line, and the lines after it are read', () => {
    // The open quote swallows "1\n2\n3" as one field until the record passes 12 bytes.
    const text = `a,b\nc,"1\n2\n3\n4\n5\n6 tail\ng,h\n`;
    const { out, overflows, skippedLines } = run(text, 4, 12);
    // Dropped at 16 bytes (`c,"1…6 t`), then `ail` and its newline: nothing of that line is read.
    expect(overflows).toEqual([16]);
    expect(skippedLines).toBe(1);
    expect(out).toBe('a,b\ng,h\n');
  });

  it('when a batcher starts inside a long record (a resume), then it drops the bytes up to the next newline', () => {
    const batcher = new RecordBatcher(QUOTE, COMMA, 16, true);
    expect(batcher.skippingLongRecord).toBe(true);
    const first = batcher.push(Buffer.from('xxxxxxxx'));
    expect(first).toMatchObject({ skipped: 8, skippedLines: 0, overflow: 0 });
    expect(first.batch.length).toBe(0);
    const second = batcher.push(Buffer.from('xx\na,b\n'));
    expect(second).toMatchObject({ skipped: 3, skippedLines: 1, overflow: 0 });
    expect(second.batch.toString()).toBe('a,b\n');
    expect(batcher.skippingLongRecord).toBe(false);
  });
});

const options = () => ({ ...datasetProfileInput.parse({ source: { inline: 'x' } }), formatHint: undefined });

/** A CSV whose 5th line is one record of `MAX_RECORD_BYTES` + 1 MiB, and a ragged record on line 8. */
function csvWithLongLine(): Buffer {
  const long = `${'z'.repeat(MAX_RECORD_BYTES + 1024 * 1024)},1`;
  return Buffer.from(`name,n\nann,1\nbob,2\ncat,3\n${long}\ndan,4\neve,5\nfay\ngus,6\n`);
}

async function profileOf(bytes: Buffer, chunk: number): Promise<ProfileSummary> {
  const p = new Profiler(options());
  for (let at = 0; at < bytes.length; at += chunk) p.write(bytes.subarray(at, at + chunk));
  await p.end();
  return p.summary();
}

describe('dataset-profile: a record longer than the limit', () => {
  it('when a line is longer than the record limit, then it is one parse error and the rows after it are profiled', async () => {
    const bytes = csvWithLongLine();
    for (const chunk of [4096, 1024 * 1024, bytes.length]) {
      const summary = await profileOf(bytes, chunk);
      expect(summary.rowCount, `chunks of ${chunk}`).toBe(6);
      expect(summary.parseErrors.count, `chunks of ${chunk}`).toBe(2);
      expect(summary.parseErrors.first.map((e) => e.line)).toEqual([5, 8]);
      expect(summary.parseErrors.first[0]?.message).toMatch(
        /longer than 4194304 bytes.*skipped to the end of its line/,
      );
      const n = summary.columns.find((c) => c.name === 'n');
      expect(n?.max).toBe(6);
    }
  });

  it('when a profile is saved inside a long record and resumed, then the result equals an uninterrupted run', async () => {
    const bytes = csvWithLongLine();
    const whole = await profileOf(bytes, 64 * 1024);
    const cut = MAX_RECORD_BYTES + 512 * 1024;
    const first = new Profiler(options());
    for (let at = 0; at < cut; at += 64 * 1024) first.write(bytes.subarray(at, Math.min(at + 64 * 1024, cut)));
    const saved: ProfilerState = JSON.parse(JSON.stringify(first.state()));
    expect(saved.skipping).toBe(true);

    const second = new Profiler(options(), saved);
    for (let at = saved.offset; at < bytes.length; at += 64 * 1024) second.write(bytes.subarray(at, at + 64 * 1024));
    await second.end();
    expect(second.summary()).toEqual(whole);
  });
});
