import { describe, expect, it } from 'vitest';
import { hashText, StringSlots } from './string-slots.ts';
import { seededRandom } from './test-support.ts';

/** `text.slice(start, end)`'s slot in `table`, given `next` if it is new (as the exact counts ask). */
function slotOf(table: StringSlots, text: string, start: number, end: number, next: number, hash?: number): number {
  const h = hash ?? hashText(text, start, end);
  const slot = table.find(text, start, end, h);
  if (slot >= 0) return slot;
  table.insert(text.slice(start, end), h, next);
  return next;
}

describe('StringSlots', () => {
  it('when values are looked up where they lie in a larger text, then each keeps the slot it was first given, as a Map would', () => {
    const random = seededRandom(11);
    const table = new StringSlots();
    const reference = new Map<string, number>();
    // Prefixes of one another, one character apart, empty, non-ASCII and surrogate pairs, long:
    // well past the table's first capacity and its first character store, so both grow.
    const pool = Array.from({ length: 2500 }, (_, i) => {
      const n = Math.floor(random() * 1e6);
      switch (i % 5) {
        case 0:
          return String(n);
        case 1:
          return `${n % 500}/${n % 28}/2010`;
        case 2:
          return `Sub-Saharan Africa ${'x'.repeat(i % 7)}`;
        case 3:
          return `é—€${String.fromCodePoint(0x1f600 + (n % 50))}${n % 100}`;
        default:
          return 'y'.repeat(i % 300);
      }
    });
    for (let n = 0; n < 30_000; n++) {
      const value = pool[Math.floor(random() * pool.length)] as string;
      const before = 'ab,'.slice(0, n % 4);
      const text = `${before}${value},z`;
      const next = reference.size;
      const want = reference.get(value);
      const slot = slotOf(table, text, before.length, before.length + value.length, next);
      if (want === undefined) {
        expect(slot).toBe(next);
        reference.set(value, next);
      } else expect(slot).toBe(want);
    }
    expect(reference.size).toBeGreaterThan(1000);
  });

  it('when different values share a hash, then they get slots of their own and are found again', () => {
    const table = new StringSlots();
    const values = ['a', 'b', 'ab', 'ba', '', 'abc', 'abd', 'é', 'e'];
    // All under one hash: every lookup walks the same probe sequence and compares characters.
    expect(values.map((v, i) => slotOf(table, v, 0, v.length, i, 42))).toEqual(values.map((_, i) => i));
    for (let round = 0; round < 3; round++) {
      const again = values.map((v) => slotOf(table, `--${v}--`, 2, 2 + v.length, values.length, 42));
      expect(again).toEqual(values.map((_, i) => i));
    }
    expect(table.find('abe', 0, 3, 42)).toBe(-1);
    expect(table.find('ab', 0, 2, hashText('ab', 0, 2))).toBe(-1);
  });

  it('when a value is hashed where it lies, then its hash is that of the value alone', () => {
    for (const v of ['', 'x', 'Central America and the Caribbean', '6/26/2010', 'é—😀']) {
      expect(hashText(`,,${v};`, 2, 2 + v.length)).toBe(hashText(v, 0, v.length));
    }
    expect(hashText('ab', 0, 2)).not.toBe(hashText('ba', 0, 2));
  });
});
