import {
  type ColumnProfile,
  DATASET_EXACT_DISTINCT_LIMIT,
  datasetProfileInput,
  datasetProfileResult,
} from '@longhaul/shared';
import { describe, expect, it } from 'vitest';
import { layoutOf, mergeParts, type PartProfile, partStart, recordBoundary } from './profile-parts.ts';
import { Profiler, type ProfileSummary, SNIFF_BYTES } from './profiler.ts';
import { seededRandom } from './test-support.ts';

type Input = Parameters<typeof datasetProfileInput.parse>[0];

const optionsOf = (extra: Partial<Input> = {}) => ({
  ...datasetProfileInput.parse({ source: { inline: 'x' }, ...extra }),
  formatHint: undefined,
});

function feed(profiler: Profiler, bytes: Uint8Array, chunk: number): void {
  for (let at = 0; at < bytes.length; at += chunk) profiler.write(bytes.subarray(at, at + chunk));
}

async function onePass(data: Buffer, extra: Partial<Input> = {}): Promise<ProfileSummary> {
  const p = new Profiler(optionsOf(extra));
  feed(p, data, 5000);
  await p.end();
  return p.summary();
}

/**
 * What a parallel profile does, in-process: the layout from the first bytes, each cut moved to a
 * record boundary found in a window after it (the cut falls mid-record), one profiler per range
 * (fed in chunks of another size), then the merge.
 */
async function inParts(data: Buffer, cuts: number[], extra: Partial<Input> = {}) {
  const options = optionsOf(extra);
  const layout = layoutOf(data.subarray(0, SNIFF_BYTES), options);
  if (!layout) throw new Error('no layout');
  const quote = layout.dialect ? layout.dialect.quote.charCodeAt(0) : null;
  const delimiter = layout.dialect ? layout.dialect.delimiter.charCodeAt(0) : 0;
  const starts = [0];
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = recordBoundary(data.subarray(cut - 1, cut - 1 + 64 * 1024), quote, delimiter);
    const start = cut - 1 + at;
    if (at > 0 && start > (starts.at(-1) as number) && start < data.length) starts.push(start);
  }
  const parts: { start: number; profile: PartProfile }[] = [];
  for (let k = 0; k < starts.length; k++) {
    const start = starts[k] as number;
    const end = starts[k + 1] ?? data.length;
    const p = new Profiler(options, partStart(layout, start));
    feed(p, data.subarray(start, end), 3001 + k * 17);
    await p.end();
    // Through JSON, as a part's result travels.
    parts.push({ start, profile: JSON.parse(JSON.stringify({ state: p.state(), endsInQuote: p.endsInQuote })) });
  }
  return { starts, merged: mergeParts(options, parts, data.length) };
}

/**
 * A part-merged summary against the one-pass summary: equal field for field, stdDev up to
 * rounding. A column past the exact limit is compared on its exact statistics and its distinct
 * estimate (the HyperLogLog merges to the same registers); its top-k, quantiles and histogram are
 * estimates, checked against their error bounds in their own test.
 */
function expectSameProfile(merged: ProfileSummary, whole: ProfileSummary): void {
  const strip = (s: ProfileSummary) => ({
    ...s,
    columns: s.columns.map((c) =>
      c.distinct.estimated
        ? { ...c, stdDev: null, topK: [], quantiles: null, histogram: null }
        : { ...c, stdDev: null },
    ),
  });
  expect(strip(merged)).toEqual(strip(whole));
  merged.columns.forEach((c, i) => {
    const expected = whole.columns[i]?.stdDev;
    if (expected === null || expected === undefined) expect(c.stdDev).toBe(expected);
    else expect(Math.abs((c.stdDev as number) - expected)).toBeLessThanOrEqual(Math.abs(expected) * 1e-12);
  });
}

/** The `amount` of row `i` of {@link variedCsv} ('' for a null, null for a malformed row). */
const amountOf = (i: number, distinctAmounts: number) =>
  i % 251 === 17 ? null : i % 13 === 0 ? '' : String((((i * 7919) % distinctAmounts) - distinctAmounts / 3) / 100);

/** A CSV with every kind of value: nulls, mixed kinds, dates, quoted fields, malformed rows. */
function variedCsv(rows: number, distinctAmounts: number): Buffer {
  const lines = ['id,amount,qty,flag,when,label,mixed,note'];
  for (let i = 0; i < rows; i++) {
    if (i % 251 === 17) {
      lines.push(`${i},1,2,3,4,5,6,7,8`); // one field too many
      continue;
    }
    const amount = amountOf(i, distinctAmounts);
    const qty = i % 10 === 3 ? '' : i % 37 === 0 ? 'NA' : String((i * 31) % 97);
    const flag = i % 5 === 0 ? 'TRUE' : String(i % 3 === 0);
    const when = `2024-0${1 + (i % 9)}-${String(1 + (i % 28)).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}:00:00Z`;
    const label = i % 4 === 0 ? `"cat, ${i % 50}"` : `cat${i % 50}`;
    const mixed = ['7', 'seven', 'true', '', '7.5', '2024-01-01'][i % 6];
    const note = i % 3 === 0 ? `"said ""hi"", ${i % 40}"` : `plain ${i % 60}`;
    lines.push(`${i % 900},${amount},${qty},${flag},${when},${label},${mixed},${note}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n`);
}

const cutsOf = (size: number, count: number, seed: number) => {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => 1 + Math.floor(random() * (size - 2)));
};

describe('dataset-profile merged from byte ranges', () => {
  it('when a CSV within the exact limit is cut at random bytes, then the merged profile equals one pass exactly', async () => {
    const data = variedCsv(8000, 700);
    const whole = await onePass(data);
    expect(whole.columns.every((c) => !c.distinct.estimated)).toBe(true);
    expect(whole.parseErrors.count).toBeGreaterThan(20);
    for (const [seed, count] of [
      [1, 1],
      [2, 3],
      [3, 7],
      [4, 15],
    ] as const) {
      const { starts, merged } = await inParts(data, cutsOf(data.length, count, seed));
      expect(starts.length).toBeGreaterThan(1);
      if (!('summary' in merged)) throw new Error(merged.unsafe);
      expectSameProfile(merged.summary, whole);
    }
  });

  it('when values pass the exact limit, then exact statistics are equal and sketches stay within their error', async () => {
    // 5,000 distinct amounts and dates: each part may or may not pass the limit on its own.
    const data = variedCsv(20_000, 5000);
    const whole = await onePass(data);
    const { starts, merged } = await inParts(data, cutsOf(data.length, 5, 9));
    expect(starts.length).toBe(6);
    if (!('summary' in merged)) throw new Error(merged.unsafe);
    const m = merged.summary;
    expect(m.rowCount).toBe(whole.rowCount);
    expect(m.parseErrors).toEqual(whole.parseErrors);
    const byName = (s: ProfileSummary, name: string) => s.columns.find((c) => c.name === name) as ColumnProfile;
    for (const one of whole.columns) {
      const c = byName(m, one.name);
      const { count, nulls, typeCounts, min, max, mean, type, distinct } = one;
      // HyperLogLog registers merge to the very registers one pass has: the estimate is equal too.
      expect({ count, nulls, typeCounts, min, max, mean, type, distinct }, one.name).toEqual({
        count: c.count,
        nulls: c.nulls,
        typeCounts: c.typeCounts,
        min: c.min,
        max: c.max,
        mean: c.mean,
        type: c.type,
        distinct: c.distinct,
      });
      if (!one.distinct.estimated) expect(c).toMatchObject({ ...one, stdDev: c.stdDev });
    }
    const amount = byName(m, 'amount');
    expect(amount.distinct.estimated).toBe(true);
    expect(amount.distinct.value).toBeGreaterThan(DATASET_EXACT_DISTINCT_LIMIT);
    // Quantiles: DDSketch, within 1% of the exact value (relative), as in one pass.
    const values = Array.from({ length: 20_000 }, (_, i) => amountOf(i, 5000))
      .filter((v) => v !== null && v !== '')
      .map(Number)
      .sort((a, b) => a - b);
    expect(values.length).toBe(amount.count);
    const q = amount.quantiles as Record<string, number>;
    for (const [name, p] of Object.entries({ p05: 0.05, p25: 0.25, p50: 0.5, p75: 0.75, p95: 0.95 })) {
      const exact = values[Math.floor(p * (values.length - 1))] as number;
      expect(Math.abs((q[name] as number) - exact), name).toBeLessThanOrEqual(Math.abs(exact) * 0.0101 + 0.01);
    }
    // Misra–Gries top-k: each count a lower bound, at most n / 1001 under.
    const bound = amount.count / (DATASET_EXACT_DISTINCT_LIMIT + 1);
    const truth = new Map<string, number>();
    for (const v of values) truth.set(String(v), (truth.get(String(v)) ?? 0) + 1);
    for (const { value, count } of amount.topK) {
      expect(count).toBeLessThanOrEqual(truth.get(value) ?? 0);
      expect(count).toBeGreaterThanOrEqual((truth.get(value) ?? 0) - bound);
    }
  });

  it('when NDJSON with nulls, nested values and late keys is cut anywhere, then the merged profile equals one pass', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 6000; i++) {
      const row: Record<string, unknown> = { id: i, v: i % 7 === 0 ? null : (i * 13) % 501 };
      if (i % 3 === 0) row.tag = i % 2 === 0 ? 'even' : { nested: [i % 4] };
      if (i % 11 === 0) row.at = `2024-05-${String(1 + (i % 28)).padStart(2, '0')}`;
      if (i > 4000) row.late = i % 9 === 0 ? 'NA' : i % 5;
      lines.push(i % 997 === 5 ? '{"broken": ' : JSON.stringify(row));
    }
    const data = Buffer.from(`${lines.join('\n')}\n`);
    const whole = await onePass(data);
    expect(whole.columns.map((c) => c.name)).toEqual(['id', 'v', 'tag', 'at', 'late']);
    const { starts, merged } = await inParts(data, cutsOf(data.length, 6, 5));
    expect(starts.length).toBe(7);
    if (!('summary' in merged)) throw new Error(merged.unsafe);
    expectSameProfile(merged.summary, whole);
  });

  it('when quoted fields hold newlines but no cut lands in one, then the split avoids them and the profile is equal', async () => {
    const lines = ['k,text,n'];
    for (let i = 0; i < 5000; i++) lines.push(`${i},"line one\nline ""two"", ${i % 30}\nthree",${i % 17}`);
    const data = Buffer.from(`${lines.join('\n')}\n`);
    const whole = await onePass(data);
    expect(whole.rowCount).toBe(5000);
    // Most cuts land inside a quoted field; the window scan still finds a true record boundary.
    const { starts, merged } = await inParts(data, cutsOf(data.length, 9, 3));
    expect(starts.length).toBe(10);
    if (!('summary' in merged)) throw new Error(merged.unsafe);
    expectSameProfile(merged.summary, whole);
  });

  it('when columns mix odd values of every kind, then one pass and the merged parts agree and both are valid profiles', async () => {
    // What Number() or Date.parse read differently from the profile, values at the edges of a
    // double, and text of every shape, among ordinary values that take some columns past the exact
    // limit. Found this way: hex-like text and Infinity thrown into a quantile sketch, and a mean
    // or spread beyond a double reported as Infinity, which the result schema refuses.
    const odd = [
      '1e400',
      '-1e400',
      '1e-400',
      'nan',
      'inf',
      'Infinity',
      '-Infinity',
      '0x10',
      '0b11',
      '1_000',
      ' 12 ',
      '+5',
      '-0',
      '00012',
      '.5',
      '5.',
      '1E+05',
      '9007199254740993',
      '123456789012345678901234567890',
      '1.7976931348623157e308',
      '-1.7976931348623157e308',
      '1.7976931348623159e308',
      '5e-324',
      '1e999999',
      '0.1e-999999',
      '12345678901234567',
      '2024-02-30',
      '2024-13-01',
      '0000-01-01',
      '9999-12-31T23:59:59.999Z',
      '2024-01-01T25:00:00',
      '2024-01-01 00:00:00+14:00',
      '2024-01-01T00:00:00+99:99',
      '-2024-01-01',
      '2024-01-01T00:00:00.123456789Z',
      '20240101',
      'true',
      'FALSE',
      'Zürich',
      '😀',
      'x'.repeat(3000),
      '"',
      '   ',
      '\t',
      '\u00a012\u00a0',
      '１２',
      '-',
      '.',
      'e5',
      '1e',
      '1..2',
      'a,b',
      'two\nlines',
    ];
    const quoted = (v: string) => (/[",\n\r]/.test(v) || v.trim() !== v ? `"${v.replaceAll('"', '""')}"` : v);
    for (let seed = 1; seed <= 12; seed++) {
      const random = seededRandom(seed);
      const kinds = Array.from({ length: 2 + Math.floor(random() * 4) }, () => Math.floor(random() * 4));
      const lines = [kinds.map((_, i) => `c${i}`).join(',')];
      const rows = 2000 + Math.floor(random() * 2000);
      for (let r = 0; r < rows; r++) {
        const fields = kinds.map((kind) => {
          if (random() < 0.3) return quoted(odd[Math.floor(random() * odd.length)] as string);
          if (kind === 0) return String(Math.floor(random() * 1e6));
          if (kind === 1) return (random() * 1000 - 500).toFixed(Math.floor(random() * 18));
          if (kind === 2) return new Date(Math.floor(random() * 4e12)).toISOString().slice(0, random() < 0.5 ? 10 : 19);
          return quoted(String(random()).slice(2, 3 + Math.floor(random() * 20)));
        });
        lines.push(fields.join(','));
      }
      const data = Buffer.from(`${lines.join(random() < 0.5 ? '\n' : '\r\n')}\n`);
      const whole = await onePass(data);
      expect(whole.rowCount).toBe(rows);
      expect(datasetProfileResult.shape.columns.safeParse(whole.columns).error).toBeUndefined();
      const { merged } = await inParts(data, [Math.floor(data.length / 3), Math.floor((2 * data.length) / 3)]);
      if (!('summary' in merged)) throw new Error(merged.unsafe);
      expectSameProfile(merged.summary, whole);
    }
  });

  it('when a cut lands in a quoted field longer than the window, then the merge refuses it as unsafe', async () => {
    const body = Array.from({ length: 20_000 }, (_, i) => `note line ${i}`).join('\n');
    const lines = ['k,text'];
    for (let i = 0; i < 3000; i++) lines.push(`${i},short ${i}`);
    lines.push(`big,"${body}"`);
    for (let i = 0; i < 3000; i++) lines.push(`${i},short ${i}`);
    const data = Buffer.from(`${lines.join('\n')}\n`);
    const middle = data.indexOf('note line 10000');
    const { merged } = await inParts(data, [middle]);
    expect(merged).toEqual({ unsafe: expect.stringMatching(/^a quoted field holds a newline across byte \d+/) });
  });
  it('when a part was profiled by an earlier version of the worker, then the merge refuses it as unsafe', async () => {
    const data = variedCsv(4000, 50);
    const { merged: fine } = await inParts(data, [Math.floor(data.length / 2)]);
    expect(fine).toHaveProperty('summary');
    const options = optionsOf();
    const layout = layoutOf(data.subarray(0, SNIFF_BYTES), options);
    if (!layout) throw new Error('no layout');
    const p = new Profiler(options, partStart(layout, 0));
    feed(p, data, 4096);
    await p.end();
    const earlier = { ...p.state(), v: 1 } as unknown as PartProfile['state'];
    expect(mergeParts(options, [{ start: 0, profile: { state: earlier, endsInQuote: false } }], data.length)).toEqual({
      unsafe: 'a part was profiled by an earlier version of the worker',
    });
  });
});

describe('record boundaries for a split', () => {
  it('when a window starts mid-record, then the boundary is just after the next record-ending newline', () => {
    const w = Buffer.from('x5,abc\n6,def\n');
    expect(recordBoundary(w, 0x22, 0x2c)).toBe(7);
    expect(recordBoundary(w, null, 0)).toBe(7);
  });

  it('when the window starts inside a quoted field with newlines, then the newline inside it is skipped', () => {
    // The split point is inside "a\nb": only the bytes after it can tell, once the scans agree.
    const w = Buffer.from('xa\nb",2\n3,"c",4\n5,6\n');
    const at = recordBoundary(w, 0x22, 0x2c);
    expect(w.subarray(at).toString()).toBe('3,"c",4\n5,6\n');
  });

  it('when the window has no newline, then there is no boundary', () => {
    expect(recordBoundary(Buffer.from('x,abc,def'), 0x22, 0x2c)).toBe(-1);
  });
});
