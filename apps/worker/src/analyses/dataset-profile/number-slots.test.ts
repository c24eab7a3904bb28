import { describe, expect, it } from 'vitest';
import { NumberSlots } from './number-slots.ts';
import { seededRandom } from './test-support.ts';

const float = new Float64Array(1);
const halves = new Int32Array(float.buffer);

/** `x`'s slot in `table` as the exact counts ask for it: by its halves, -0 as 0. */
function slotOf(table: NumberSlots, x: number, next: number): number {
  float[0] = x === 0 ? 0 : x;
  return table.slotOf(halves[0] as number, halves[1] as number, next);
}

describe('NumberSlots', () => {
  it('when numbers are looked up many times over, then each keeps the slot it was first given, as a Map would', () => {
    const random = seededRandom(7);
    const table = new NumberSlots();
    const reference = new Map<number, number>();
    // Integers (whose low halves are all zero), decimals, negative and huge or tiny magnitudes,
    // repeated, well past the table's first capacity so it grows several times.
    const pool = Array.from({ length: 3000 }, (_, i) =>
      i % 3 === 0
        ? i - 1500
        : i % 3 === 1
          ? Math.round(random() * 1e6) / 100
          : (random() - 0.5) * 10 ** ((i % 600) - 300),
    );
    for (let n = 0; n < 20_000; n++) {
      const x = pool[Math.floor(random() * pool.length)] as number;
      const next = reference.size;
      const want = reference.get(x);
      const slot = slotOf(table, x, next);
      if (want === undefined) {
        expect(slot).toBe(next);
        reference.set(x, next);
      } else expect(slot).toBe(want);
    }
    expect(reference.size).toBeGreaterThan(2000);
  });

  it('when numbers differ in one bit of either half, then they get slots of their own', () => {
    const table = new NumberSlots();
    expect(table.slotOf(0, 1, 0)).toBe(0);
    expect(table.slotOf(1, 0, 1)).toBe(1);
    expect(table.slotOf(0, -2147483648, 2)).toBe(2);
    expect(table.slotOf(-1, -1, 3)).toBe(3);
    expect([table.slotOf(0, 1, 4), table.slotOf(1, 0, 4), table.slotOf(0, -2147483648, 4)]).toEqual([0, 1, 2]);
    expect(slotOf(table, 5e-324, 4)).toBe(1);
  });
});
