import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyText, FieldClassifier, KIND_INTEGER, KIND_NUMBER, VALUE_KINDS } from './value-kind.ts';

const NULLS = ['', 'null', 'NULL', 'NA', 'N/A', 'NaN'];

/** What the reference path says about `raw`: null, or its kind, key (as text) and number. */
function reference(raw: string) {
  if (new Set(NULLS).has(raw.trim())) return null;
  const c = classifyText(raw);
  return { kind: c.kind, key: c.key, numeric: c.numeric };
}

/** What the fast path says about `raw` placed between `before` and `after` in a larger text. */
function fast(classifier: FieldClassifier, before: string, raw: string, after: string) {
  const text = before + raw + after;
  if (!classifier.classify(text, before.length, before.length + raw.length)) return null;
  // A number is keyed by itself, a string or date-time with `keyStart` by its text where it lies (see FieldValue).
  const number = classifier.kind === KIND_INTEGER || classifier.kind === KIND_NUMBER;
  const inPlace = !number && classifier.keyStart >= 0;
  return {
    kind: VALUE_KINDS[classifier.kind],
    key: number
      ? String(classifier.numeric)
      : inPlace
        ? text.slice(classifier.keyStart, classifier.keyEnd)
        : String(classifier.key),
    numeric: classifier.numeric,
  };
}

const digits = (min: number, max: number) =>
  fc.array(fc.constantFrom(...'0123456789'), { minLength: min, maxLength: max }).map((d) => d.join(''));
const pad2 = (n: number) => String(n).padStart(2, '0');

const numberText = fc.oneof(
  fc.double({ noNaN: true }).map(String),
  fc
    .double({ noNaN: true, min: -1e6, max: 1e6 })
    .chain((x) => fc.integer({ min: 0, max: 12 }).map((k) => x.toFixed(k))),
  fc.double({ noNaN: true }).chain((x) => fc.integer({ min: 0, max: 16 }).map((k) => x.toExponential(k))),
  fc
    .tuple(
      fc.constantFrom('', '+', '-'),
      digits(0, 20),
      fc.constantFrom('', '.'),
      digits(0, 20),
      fc.constantFrom('', 'e', 'E-', 'e+'),
      digits(0, 4),
    )
    .map((p) => p.join('')),
  fc.integer().map(String),
  // Text that String() would write otherwise: leading zeros, signs, tiny magnitudes.
  fc
    .tuple(fc.constantFrom('', '-', '+'), fc.constantFrom('0', '00', '0.', '.', '0.00000', '0.000000'), digits(0, 4))
    .map((p) => p.join('')),
  fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
);
const dateText = fc
  .tuple(
    fc.integer({ min: 0, max: 9999 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.option(
      fc.tuple(
        fc.constantFrom('T', ' ', 't'),
        fc.integer({ min: 0, max: 25 }),
        fc.integer({ min: 0, max: 61 }),
        fc.option(fc.integer({ min: 0, max: 61 })),
        fc.option(digits(0, 10)),
        fc.oneof(
          fc.constantFrom('', 'Z', '+05:30', '-0800', 'z', '+00:00', '-00:00'),
          fc
            .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 25 }), fc.constantFrom('', ':', '::'))
            .chain(([sign, h, colon]) =>
              fc.integer({ min: 0, max: 61 }).map((m) => `${sign}${pad2(h)}${colon}${pad2(m)}`),
            ),
          fc.constantFrom('+1', '+123', '-12:3', '+12:345', '+12:'),
        ),
      ),
    ),
  )
  .map(([y, m, d, time]) => {
    const date = `${String(y).padStart(4, '0')}-${pad2(m)}-${pad2(d)}`;
    if (!time) return date;
    const [sep, h, min, s, frac, zone] = time;
    const sec = s === null ? '' : `:${pad2(s)}${frac === null ? '' : `.${frac}`}`;
    return `${date}${sep}${pad2(h)}:${pad2(min)}${sec}${zone}`;
  });
const wordText = fc.oneof(
  fc.constantFrom(
    'true',
    'FALSE',
    'True',
    'fAlSe',
    'tru',
    'falsey',
    'null',
    'NA',
    'N/A',
    'NaN',
    'nan',
    'Infinity',
    '-',
    '.',
    '+',
    'e5',
    '0x10',
  ),
  fc.string(),
  fc.string({ unit: 'grapheme' }),
);
const spaces = fc
  .array(
    fc.constantFrom(
      ' ',
      '\t',
      '\r',
      '\u00a0',
      '\ufeff',
      '\u2028',
      '\u2029',
      '\u3000',
      '\u1680',
      '\u180e',
      '\u0085',
      '\u200b',
      '\u200a',
      '\u205f',
      'é',
    ),
    { maxLength: 2 },
  )
  .map((s) => s.join(''));
const field = fc.tuple(spaces, fc.oneof(numberText, dateText, wordText), spaces).map(([a, v, b]) => a + v + b);

describe('FieldClassifier', () => {
  it('when any field is classified in place, then it agrees with classifyText (kind, key, number, nulls)', () => {
    const classifier = new FieldClassifier(NULLS);
    fc.assert(
      fc.property(
        field,
        fc.string({ maxLength: 3 }),
        fc.constantFrom('', ',', ':00', '5', 'Z', '"x'),
        (raw, before, after) => {
          const want = reference(raw);
          const got = fast(classifier, before, raw, after);
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('when a value is a common ISO date-time, then its epoch milliseconds equal Date.parse', () => {
    const classifier = new FieldClassifier([]);
    for (const v of [
      '0000-01-01',
      '1969-12-31T23:59:59.999Z',
      '2024-02-30',
      '2024-02-29 23:59',
      '9999-12-31T23:59:59.1234',
      '2021-03-01T16:28:21.907796+00:00',
      '2021-03-01 00:00:07-0530',
      '0000-01-01T00:00+23:59',
    ]) {
      expect(fast(classifier, '', v, '')).toEqual(reference(v));
    }
  });

  it('when null values are configured, then exactly those (trimmed) are nulls', () => {
    const cases: [string[], [string, boolean][]][] = [
      [
        ['-', '0', 'none'],
        [
          ['-', true],
          [' 0 ', true],
          ['none', true],
          ['', false],
          ['00', false],
          ['nonE', false],
        ],
      ],
      [
        ['—', 'Ø', 'xé'],
        [
          ['—', true],
          [' — ', true],
          ['\u00a0—\u3000', true],
          ['Ø', true],
          ['xé', true],
          ['ØØ', false],
          ['—x', false],
          ['é', false],
        ],
      ],
    ];
    for (const [nulls, values] of cases) {
      const classifier = new FieldClassifier(nulls);
      for (const [raw, isNull] of values) expect(classifier.classify(raw, 0, raw.length), raw).toBe(!isNull);
    }
  });
});
