import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type ColumnProfile, datasetProfileInput } from '@longhaul/shared';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DatasetError } from './dataset-error.ts';
import { Profiler, type ProfilerState, type ProfileSummary } from './profiler.ts';
import { seededRandom } from './test-support.ts';
import { classifyText } from './value-kind.ts';

/** The quantile levels the profile reports, written out here so the test does not trust the code's table. */
const LEVELS = { p01: 0.01, p05: 0.05, p25: 0.25, p50: 0.5, p75: 0.75, p95: 0.95, p99: 0.99 };

type Input = Parameters<typeof datasetProfileInput.parse>[0];

const optionsOf = (extra: Partial<Input> = {}) => ({
  ...datasetProfileInput.parse({ source: { inline: 'x' }, ...extra }),
  formatHint: undefined,
});

/** Runs the profiler over `data` in chunks of `chunk` bytes, in-process (no thread, no HTTP). */
async function profile(data: Buffer | string, extra: Partial<Input> = {}, chunk = 4096): Promise<ProfileSummary> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const p = new Profiler(optionsOf(extra));
  for (let at = 0; at < bytes.length; at += chunk) p.write(bytes.subarray(at, at + chunk));
  await p.end();
  return p.summary();
}

const column = (s: ProfileSummary, name: string): ColumnProfile => {
  const c = s.columns.find((x) => x.name === name);
  if (!c) throw new Error(`no column ${name}`);
  return c;
};

// Independent reference statistics: plain two-pass formulas over the whole array.
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sampleStd = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};
const quantile7 = (sorted: number[], q: number) => {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)] as number;
  return a + (h - lo) * (b - a);
};

describe('dataset-profile statistics', () => {
  it('when values near both ends of a double are apart by more than a double holds, then the exact quantiles stay in order and finite', async () => {
    const values = [1e308, 1.7976931348623157e308, -1e308, 1e308];
    const s = await profile(`a\n${values.join('\n')}\n`);
    const q = column(s, 'a').quantiles as Record<keyof typeof LEVELS, number>;
    const sorted = [...values].sort((x, y) => x - y);
    // The reference by weights, as numpy interpolates: it cannot overflow here either.
    for (const [name, level] of Object.entries(LEVELS)) {
      const h = (sorted.length - 1) * level;
      const lo = Math.floor(h);
      const [a, b] = [sorted[lo] as number, sorted[Math.min(lo + 1, sorted.length - 1)] as number];
      const reference = a * (1 - (h - lo)) + b * (h - lo);
      expect(q[name as keyof typeof LEVELS], name).toBeCloseTo(reference, -300);
      expect(Number.isFinite(q[name as keyof typeof LEVELS])).toBe(true);
    }
    expect(q.p01).toBeLessThan(q.p25);
    expect(q.p25).toBeLessThanOrEqual(q.p50);
  });

  it('when a small CSV is profiled, then every statistic equals one computed independently', async () => {
    const random = seededRandom(7);
    const header = 'id;amount;paid;region;signed_up';
    const rows: string[] = [];
    const amounts: number[] = [];
    const regions: string[] = [];
    let nullAmounts = 0;
    for (let i = 1; i <= 500; i++) {
      const amount = Math.round(random() * 100_000) / 100;
      const missing = i % 17 === 0;
      if (missing) nullAmounts++;
      else amounts.push(amount);
      const region = ['north', 'south', 'east', 'west', 'north east'][Math.floor(random() * 5)] as string;
      regions.push(region);
      const day = String(1 + (i % 28)).padStart(2, '0');
      rows.push(`${i};${missing ? '' : amount};${i % 3 === 0};"${region}";2024-02-${day}`);
    }
    const s = await profile(`${header}\n${rows.join('\n')}\n`, {}, 333);

    expect(s.format).toBe('csv');
    expect(s.dialect).toEqual({ delimiter: ';', quote: '"', header: true });
    expect(s.rowCount).toBe(500);
    expect(s.parseErrors.count).toBe(0);

    const amount = column(s, 'amount');
    const sorted = [...amounts].sort((a, b) => a - b);
    expect(amount.type).toBe('number');
    expect(amount.count).toBe(amounts.length);
    expect(amount.nulls).toBe(nullAmounts);
    expect(amount.distinct).toEqual({ value: new Set(amounts).size, estimated: false });
    expect(amount.min).toBe(sorted[0]);
    expect(amount.max).toBe(sorted.at(-1));
    expect(amount.mean as number).toBeCloseTo(mean(amounts), 9);
    expect(amount.stdDev as number).toBeCloseTo(sampleStd(amounts), 9);
    const q = amount.quantiles as Record<string, number>;
    for (const [name, p] of Object.entries(LEVELS)) {
      expect(q[name]).toBeCloseTo(quantile7(sorted, p), 9);
    }
    expect(amount.quantilesEstimated).toBe(false);
    const bins = amount.histogram?.bins ?? [];
    expect(bins).toHaveLength(10);
    expect(bins.reduce((a, b) => a + b.count, 0)).toBe(amounts.length);
    const width = ((sorted.at(-1) as number) - (sorted[0] as number)) / 10;
    const firstBin = amounts.filter((x) => x < (sorted[0] as number) + width).length;
    expect(bins[0]?.count).toBe(firstBin);

    const id = column(s, 'id');
    expect(id.type).toBe('integer');
    expect(id.distinct).toEqual({ value: 500, estimated: false });
    expect(id.mean).toBe(250.5);

    const paid = column(s, 'paid');
    expect(paid.type).toBe('boolean');
    expect(paid.topK).toEqual([
      { value: 'false', count: 334 },
      { value: 'true', count: 166 },
    ]);

    const region = column(s, 'region');
    const freq = new Map<string, number>();
    for (const r of regions) freq.set(r, (freq.get(r) ?? 0) + 1);
    const expectedTop = [...freq]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 10)
      .map(([value, count]) => ({ value, count }));
    expect(region.type).toBe('string');
    expect(region.topK).toEqual(expectedTop);
    expect(region.min).toBe([...freq.keys()].sort()[0]);

    const signedUp = column(s, 'signed_up');
    expect(signedUp.type).toBe('datetime');
    expect(signedUp.min).toBe('2024-02-01T00:00:00.000Z');
    expect(signedUp.max).toBe('2024-02-28T00:00:00.000Z');
    expect(signedUp.distinct.value).toBe(28);
  });

  it('when NDJSON is profiled, then keys become columns and JSON types are kept', async () => {
    const s = await profile('{"a":1,"b":"x","c":{"k":1}}\n{"a":2.5,"b":null}\n\n{"a":4,"b":"2024-01-01","d":true}\n', {
      topK: 2,
    });
    expect(s.format).toBe('ndjson');
    expect(s.dialect).toBeNull();
    expect(s.rowCount).toBe(3);
    expect(column(s, 'a')).toMatchObject({ type: 'number', count: 3, nulls: 0, min: 1, max: 4, mean: 2.5 });
    expect(column(s, 'b')).toMatchObject({ type: 'string', count: 2, nulls: 1 });
    expect(column(s, 'c')).toMatchObject({ type: 'string', count: 1, topK: [{ value: '{"k":1}', count: 1 }] });
    expect(column(s, 'd')).toMatchObject({ type: 'boolean', count: 1, nulls: 2 });
  });

  it('when 1,000,000 rows are profiled, then sketches stay within their documented error bounds', async () => {
    const random = seededRandom(42);
    const n = 1_000_000;
    const values = new Float64Array(n);
    const lines: string[] = ['user,latency'];
    for (let i = 0; i < n; i++) {
      // Log-normal latencies: a long right tail, like most real measurements.
      const u = Math.max(random(), 1e-12);
      const v = random();
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
      const x = Math.round(Math.exp(3 + 0.8 * z) * 1000) / 1000;
      values[i] = x;
      lines.push(`u${i % 250_000},${x}`);
    }
    const s = await profile(`${lines.join('\n')}\n`, {}, 1 << 20);
    expect(s.rowCount).toBe(n);

    const latency = column(s, 'latency');
    const sorted = Float64Array.from(values).sort();
    expect(latency.quantilesEstimated).toBe(true);
    const q = latency.quantiles as Record<string, number>;
    for (const [name, p] of Object.entries(LEVELS)) {
      const exact = sorted[Math.floor(p * (n - 1))] as number;
      // DDSketch: within 1% of the value (plus the rank rounding of one position).
      expect(Math.abs((q[name] as number) - exact) / exact, name).toBeLessThanOrEqual(0.0101);
    }
    expect(latency.mean as number).toBeCloseTo(mean(Array.from(values)), 6);
    expect(latency.min).toBe(sorted[0]);
    expect(latency.max).toBe(sorted[n - 1]);
    const bins = latency.histogram?.bins ?? [];
    expect(bins.reduce((a, b) => a + b.count, 0)).toBe(n);

    // HyperLogLog, 2^14 registers: standard error 0.81%; 4 σ is a bound a correct sketch never misses here.
    const user = column(s, 'user');
    expect(user.distinct.estimated).toBe(true);
    expect(Math.abs(user.distinct.value - 250_000) / 250_000).toBeLessThan(0.0325);
    const latencyDistinct = new Set(values).size;
    expect(Math.abs(latency.distinct.value - latencyDistinct) / latencyDistinct).toBeLessThan(0.0325);
  }, 120_000);
});

describe('dataset-profile on bad input', () => {
  it('when rows are malformed, then they are skipped and listed with their line numbers', async () => {
    const s = await profile('a,b\n1,2\n3\n4,5,6\n7,8\n"open,9\n', { maxErrors: 2 });
    expect(s.rowCount).toBe(2);
    expect(s.parseErrors.count).toBe(3);
    expect(s.parseErrors.first).toEqual([
      { line: 3, message: 'expected 2 fields, found 1; the row is skipped' },
      { line: 4, message: 'expected 2 fields, found 3; the row is skipped' },
    ]);
  });

  it('when quotes are malformed, then only those rows are skipped, listed by the line they start on', async () => {
    const bom = '\ufeff';
    const s = await profile(`${bom}a,b\r\n12" pizza,1\r\n"x\r\ny",2\r\n"ab"c,3\r\n4,5\r\n`, {}, 5);
    expect(s.columns.map((c) => c.name)).toEqual(['a', 'b']);
    expect(s.rowCount).toBe(2);
    expect(column(s, 'a').topK.map((t) => t.value)).toEqual(['4', 'x\r\ny']);
    expect(s.parseErrors.first).toEqual([
      { line: 2, message: 'a quote inside an unquoted field; the row is skipped' },
      {
        line: 5,
        message: 'a closing quote is followed by "c" instead of a delimiter or the end of the line; the row is skipped',
      },
    ]);
  });

  it('when the same bytes arrive in chunks of any size, then the profile is the same', async () => {
    const lines = ['id,text,n'];
    for (let i = 0; i < 300; i++) lines.push(`${i},"row ${i}, ""quoted""\nsecond line",${i % 7 === 0 ? '' : i * 1.5}`);
    const data = `${lines.join('\r\n')}\r\n`;
    const whole = await profile(data, {}, 1 << 20);
    expect(whole.rowCount).toBe(300);
    expect(column(whole, 'text').distinct).toEqual({ value: 300, estimated: false });
    for (const chunk of [1, 7, 64]) expect(await profile(data, {}, chunk)).toEqual(whole);
  });

  it('when quoted values with doubled quotes fill several blocks of records, then each is counted once, quotes undone', async () => {
    const lines = ['n,said'];
    for (let i = 0; i < 1000; i++) lines.push(`${i},"say ""${i % 3}"""`);
    const s = await profile(`${lines.join('\n')}\n`, {}, 1 << 20);
    expect(s.rowCount).toBe(1000);
    expect(column(s, 'said').topK).toEqual([
      { value: 'say "0"', count: 334 },
      { value: 'say "1"', count: 333 },
      { value: 'say "2"', count: 333 },
    ]);
    expect(column(s, 'n').distinct).toEqual({ value: 1000, estimated: false });
  });

  it('when columns repeat their values in runs, then every count equals classifyText over the parsed fields', async () => {
    // A small alphabet, so runs of the same text are common: padded, quoted, doubled quotes and nulls among them.
    const cell = fc.constantFrom(
      '1',
      '1',
      ' 1',
      '1.0',
      '2',
      '',
      'NA',
      'x',
      '"x"',
      '"a""b"',
      'a b',
      '2024-01-02',
      'true',
    );
    const nulls = ['', 'null', 'NULL', 'NA', 'N/A', 'NaN'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(cell, { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 700 }),
        async (rows) => {
          const data = `a,b,c\n${rows.map((r) => r.join(',')).join('\n')}\n`;
          const s = await profile(data, { topK: 100 }, 1 << 20);
          const records = parse(data, { columns: true }) as Record<string, string>[];
          for (const name of ['a', 'b', 'c']) {
            const counts = new Map<string, number>();
            const kinds = { integer: 0, number: 0, boolean: 0, datetime: 0, string: 0 };
            for (const record of records) {
              const raw = record[name] as string;
              if (nulls.includes(raw.trim())) continue;
              const c = classifyText(raw);
              kinds[c.kind]++;
              counts.set(c.key, (counts.get(c.key) ?? 0) + 1);
            }
            const got = column(s, name);
            expect(got.typeCounts).toEqual(kinds);
            expect(new Map(got.topK.map((t) => [t.value, t.count]))).toEqual(counts);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('when text that Number() would read sits among many distinct numbers, then the profile counts it as text', async () => {
    // Hex ids and the like: "123e4567" and "Infinity" are text to the profile, but Number() reads
    // them (as 1.23e+4569 = Infinity, Infinity, 26...). Counted before the column passes the exact
    // limit, they once went into its quantile sketch as numbers when it was seeded, and Infinity
    // threw there.
    const texts = ['123e4567', '9e999', 'Infinity', '-Infinity', '0x1A', '1_000'];
    const rows = ['id', ...texts];
    for (let i = 0; i < 3000; i++) rows.push(String(i * 7));
    const s = await profile(`${rows.join('\n')}\n`);
    const id = column(s, 'id');
    expect(id.type).toBe('string');
    expect(id.count).toBe(3006);
    expect(id.typeCounts).toMatchObject({ integer: 3000, string: 6 });
    expect(id.distinct.estimated).toBe(true);
    expect(id.distinct.value).toBeGreaterThan(2900);
    expect(id.distinct.value).toBeLessThan(3100);
  });

  it('when the file is empty or blank, then it fails clearly', async () => {
    await expect(profile('')).rejects.toThrow(new DatasetError('the dataset is empty (0 bytes)'));
    await expect(profile('\n \n')).rejects.toThrow(/only blank lines/);
  });

  it('when the file is only a header, then the profile has its columns and no rows', async () => {
    const s = await profile('name,age\n');
    expect(s.rowCount).toBe(0);
    expect(s.columns.map((c) => [c.name, c.type, c.count])).toEqual([
      ['name', 'empty', 0],
      ['age', 'empty', 0],
    ]);
  });

  it('when the bytes are not UTF-8, then it fails with the offset, and latin1 reads them', async () => {
    const latin1 = Buffer.concat([Buffer.from('city,n\nZ'), Buffer.from([0xfc]), Buffer.from('rich,1\n')]);
    await expect(profile(latin1)).rejects.toThrow(/not valid UTF-8 \(first invalid byte at offset 8\)/);
    const s = await profile(latin1, { encoding: 'latin1' });
    expect(column(s, 'city').topK).toEqual([{ value: 'Zürich', count: 1 }]);
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a,b\n', 'utf16le')]);
    await expect(profile(utf16)).rejects.toThrow(/UTF-16/);
  });

  it('when a multi-byte character is split across chunks, then it is still valid UTF-8', async () => {
    const s = await profile('w\nå\nøø\n', {}, 1);
    expect(column(s, 'w').distinct.value).toBe(2);
  });

  it('when a requested column does not exist, then it fails naming the columns there are', async () => {
    await expect(profile('a,b\n1,2\n', { columns: ['a', 'zz'] })).rejects.toThrow(
      'unknown column(s) "zz"; the dataset has "a", "b"',
    );
  });

  it('when the header leaves the index column blank, as pandas writes it, then it is still the header', async () => {
    const s = await profile(',price,when\n0,1.5,2024-01-02\n1,2.25,2024-01-03\n');
    expect(s.dialect?.header).toBe(true);
    expect(s.columns.map((c) => [c.name, c.type])).toEqual([
      ['column_1', 'integer'],
      ['price', 'number'],
      ['when', 'datetime'],
    ]);
    expect(s.rowCount).toBe(2);
  });

  it('when a first line of text and blanks sits over text, then it is data', async () => {
    const s = await profile('x,,y\na,b,c\n');
    expect(s.dialect?.header).toBe(false);
    expect(s.rowCount).toBe(2);
  });

  it('when the sniffed lines end inside a quoted field, then a first line of data is still data', async () => {
    const lines = ['1,x'];
    for (let i = 0; i < 19; i++) lines.push(`${i},y`);
    lines.push('5,"two', 'lines"', '6,z');
    const s = await profile(`${lines.join('\n')}\n`);
    expect(s.dialect?.header).toBe(false);
    expect(s.rowCount).toBe(22);
  });

  it('when the first line is data, then columns are named column_N', async () => {
    const s = await profile('1,x\n2,y\n');
    expect(s.dialect?.header).toBe(false);
    expect(s.columns.map((c) => c.name)).toEqual(['column_1', 'column_2']);
    expect(s.rowCount).toBe(2);
  });
});

describe('dataset-profile memory', () => {
  it('when counted values were cut from many batches, then they do not keep those batches alive', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    // 400 pieces of 64 KiB, each bringing one new 24-character value to the exact counts (and to
    // the text minimum and maximum): a view of its batch would keep 400 × 64 KiB = 26 MB alive.
    const p = new Profiler(optionsOf());
    p.write(Buffer.from('name,n\n'));
    const before = heap();
    for (let k = 0; k < 400; k++) {
      const lines: string[] = [];
      for (let bytes = 0; bytes < 64 * 1024; bytes += 30)
        lines.push(`customer-number-${String(k).padStart(8, '0')},${bytes}`);
      p.write(Buffer.from(`${lines.join('\n')}\n`));
    }
    const grown = heap() - before;
    await p.end();
    expect(p.summary().columns[0]?.distinct).toEqual({ value: 400, estimated: false });
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('dataset-profile resume', () => {
  it('when a profile resumes from a saved state, then the result equals an uninterrupted run', async () => {
    const lines = ['k,v,t'];
    for (let i = 0; i < 20_000; i++) lines.push(`k${i % 1500},${(i * 37) % 977},"x ""${i % 7}"""`);
    const bytes = Buffer.from(`${lines.join('\n')}\n`);
    const whole = await profile(bytes);

    const first = new Profiler(optionsOf());
    for (let at = 0; at < 200_000; at += 777) first.write(bytes.subarray(at, Math.min(at + 777, 200_000)));
    const saved: ProfilerState = JSON.parse(JSON.stringify(first.state()));
    expect(saved.offset).toBeGreaterThan(0);
    expect(bytes[saved.offset - 1]).toBe(0x0a);

    const second = new Profiler(optionsOf(), saved);
    for (let at = saved.offset; at < bytes.length; at += 4096) second.write(bytes.subarray(at, at + 4096));
    await second.end();
    expect(second.summary()).toEqual(whole);
    expect(whole.rowCount).toBe(20_000);
  });
});
