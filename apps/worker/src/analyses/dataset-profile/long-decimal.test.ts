import { describe, expect, it } from 'vitest';
import { seededRandom } from './test-support.ts';
import { FieldClassifier } from './value-kind.ts';

/** What the CSV path reads `text` as: its number, or NaN when it is not one. */
function read(classifier: FieldClassifier, text: string): number {
  return classifier.classify(text, 0, text.length) ? classifier.numeric : Number.NaN;
}

/** The exact decimal digits of the midpoint between `x` (> 0) and the next double up, and its power of ten. */
function midpoint(x: number): { digits: string; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const mantissa = (bits & ((1n << 52n) - 1n)) | (1n << 52n);
  // x = mantissa · 2^(biased − 1075); the midpoint is (2·mantissa + 1) · 2^(biased − 1076).
  const power = 1076 - biased;
  if (power <= 0) return { digits: ((2n * mantissa + 1n) << BigInt(-power)).toString(), exponent: 0 };
  // (2m + 1) / 2^power = (2m + 1) · 5^power / 10^power.
  return { digits: ((2n * mantissa + 1n) * 5n ** BigInt(power)).toString(), exponent: -power };
}

/** `digits · 10^exponent` written in plain notation. */
function plain(digits: string, exponent: number): string {
  if (exponent >= 0) return digits + '0'.repeat(exponent);
  const point = digits.length + exponent;
  return point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}` : `0.${'0'.repeat(-point)}${digits}`;
}

describe('long decimals', () => {
  it('when a double is written with 16 to 19 significant digits, then the CSV path reads exactly what Number reads', () => {
    const classifier = new FieldClassifier([]);
    const random = seededRandom(19);
    for (let i = 0; i < 50_000; i++) {
      const x = (random() - 0.5) * 10 ** Math.floor(random() * 24 - 6);
      for (const text of [String(x), x.toPrecision(16), x.toPrecision(17), x.toPrecision(19)]) {
        if (/e/.test(text)) continue;
        expect(read(classifier, text)).toBe(Number(text));
      }
    }
  });

  it('when 19 digits fall just either side of half-way between two doubles, then each rounds to the nearer one', () => {
    const classifier = new FieldClassifier([]);
    const random = seededRandom(23);
    let cases = 0;
    for (let i = 0; i < 20_000; i++) {
      const x = random() * 10 ** Math.floor(random() * 8 - 2);
      if (x === 0) continue;
      const { digits, exponent } = midpoint(x);
      // The midpoint cut to 19 significant digits, and one unit in the last place either side of that.
      const head = BigInt(digits.slice(0, 19));
      const shift = exponent + digits.length - 19;
      for (const near of [head - 1n, head, head + 1n]) {
        const text = plain(near.toString(), shift);
        if (shift < -22 || shift > 0 || text.replace(/^0\.0*/, '').replace('.', '').length > 19) continue;
        expect(read(classifier, text)).toBe(Number(text));
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(30_000);
  });

  it('when an integer has 16 to 19 digits, then it reads as Number does, an integer only while safe', () => {
    const classifier = new FieldClassifier([]);
    for (const text of ['9007199254740991', '9007199254740993', '1234567890123456789', '-9999999999999999999']) {
      expect(read(classifier, text)).toBe(Number(text));
      expect(classifier.kind).toBe(Number.isSafeInteger(Number(text)) ? 0 : 1);
    }
  });
});
