/**
 * Numbers to small integer slots, for the exact counts: an open-addressing table keyed by a
 * number's 64 bits, given as two signed 32-bit halves (low, high; see `ExactCounts`). A `Map`
 * keyed by a number takes it boxed, a heap number per value that is not a small integer, and
 * hashes it again; here no double is stored or passed, so nothing is boxed. The caller makes 0
 * and -0 one key, as a `Map` has them.
 */
export class NumberSlots {
  /** The halves stored, `keys[2i]` low and `keys[2i + 1]` high, by table position `i`. */
  private keys = new Int32Array(2 * 64);
  /** Each position's slot + 1; 0 marks an empty position. */
  private slots = new Int32Array(64);
  /** 32 − log2(capacity): a hash's top bits pick the position. */
  private shift = 32 - 6;
  private size = 0;

  /**
   * The slot of the number with these halves, if it has one; otherwise it gets `next` and that is
   * returned (so a caller sees a new number by `slotOf(low, high, next) === next`).
   */
  slotOf(low: number, high: number, next: number): number {
    const { keys, slots } = this;
    const mask = slots.length - 1;
    let i = Math.imul(Math.imul(low, 0x9e3779b1) ^ high, 0x85ebca6b) >>> this.shift;
    for (;;) {
      const slot = slots[i] as number;
      if (slot === 0) break;
      if (keys[2 * i] === low && keys[2 * i + 1] === high) return slot - 1;
      i = (i + 1) & mask;
    }
    keys[2 * i] = low;
    keys[2 * i + 1] = high;
    slots[i] = next + 1;
    // Kept at most half full, so a probe is short.
    if (++this.size * 2 > slots.length) this.grow();
    return next;
  }

  private grow(): void {
    const { keys, slots } = this;
    this.keys = new Int32Array(keys.length * 2);
    this.slots = new Int32Array(slots.length * 2);
    this.shift--;
    this.size = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number;
      if (slot !== 0) this.slotOf(keys[2 * i] as number, keys[2 * i + 1] as number, slot - 1);
    }
  }
}
