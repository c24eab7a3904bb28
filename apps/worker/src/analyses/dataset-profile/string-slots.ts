/**
 * A 32-bit hash of `text.slice(start, end)`, read where it lies (FNV-1a over the UTF-16 code
 * units, then a murmur-style final mix, so the top bits that pick a table position are mixed too).
 */
export function hashText(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * Strings to small integer slots, for the exact counts: an open-addressing table keyed by a hash
 * of a string's characters ({@link hashText}), that finds a value where it lies in the decoded
 * batch and compares its characters there. A `Map` needs the value as a string of its own: a
 * fresh string cut out of the batch per value, hashed again by V8, garbage soon after (on a file
 * of low-cardinality text columns, that lookup and its slice were a tenth of the thread's time).
 * Here a value already counted costs no string; the caller makes one for a new value only.
 */
export class StringSlots {
  /** Each position's hash; meaningful where `slots` is not 0. */
  private hashes = new Int32Array(64);
  /** Each position's slot + 1; 0 marks an empty position. */
  private slots = new Int32Array(64);
  /**
   * Each position's key, as `chars[at[i], at[i] + lengths[i])`: compared with a value's
   * characters in a typed array, where a stored string (often a view of a copy, see ownKey)
   * reads each character through V8's string-shape checks (about 1.5× slower, in a
   * micro-benchmark).
   */
  private at = new Int32Array(64);
  private lengths = new Int32Array(64);
  private chars = new Uint16Array(1024);
  private charsUsed = 0;
  /** 32 − log2(capacity): a hash's top bits pick the position. */
  private shift = 32 - 6;
  private size = 0;

  /** The slot of `text.slice(start, end)`, whose {@link hashText} is `hash`; -1 if it has none. */
  find(text: string, start: number, end: number, hash: number): number {
    const { hashes, slots, lengths, chars } = this;
    const mask = slots.length - 1;
    const length = end - start;
    for (let i = hash >>> this.shift; ; i = (i + 1) & mask) {
      const slot = slots[i] as number;
      if (slot === 0) return -1;
      if (hashes[i] !== hash || lengths[i] !== length) continue;
      const from = (this.at[i] as number) - start;
      let j = start;
      while (j < end && chars[from + j] === text.charCodeAt(j)) j++;
      if (j === end) return slot - 1;
    }
  }

  /** Gives `key`, whose {@link hashText} is `hash` and which has no slot yet, the slot `slot`. */
  insert(key: string, hash: number, slot: number): void {
    if (this.charsUsed + key.length > this.chars.length) {
      const grown = new Uint16Array(Math.max(2 * this.chars.length, this.charsUsed + key.length));
      grown.set(this.chars.subarray(0, this.charsUsed));
      this.chars = grown;
    }
    const from = this.charsUsed;
    for (let j = 0; j < key.length; j++) this.chars[from + j] = key.charCodeAt(j);
    this.charsUsed += key.length;
    this.place(hash, slot, from, key.length);
  }

  /** Puts a key already in `chars` at the first free position from its hash's. */
  private place(hash: number, slot: number, from: number, length: number): void {
    const { hashes, slots } = this;
    const mask = slots.length - 1;
    let i = hash >>> this.shift;
    while (slots[i] !== 0) i = (i + 1) & mask;
    hashes[i] = hash;
    slots[i] = slot + 1;
    this.at[i] = from;
    this.lengths[i] = length;
    // Kept at most half full, so a probe is short.
    if (++this.size * 2 > slots.length) this.grow();
  }

  private grow(): void {
    const { hashes, slots, at, lengths } = this;
    this.hashes = new Int32Array(hashes.length * 2);
    this.slots = new Int32Array(slots.length * 2);
    this.at = new Int32Array(at.length * 2);
    this.lengths = new Int32Array(lengths.length * 2);
    this.shift--;
    this.size = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number;
      if (slot !== 0) this.place(hashes[i] as number, slot - 1, at[i] as number, lengths[i] as number);
    }
  }
}
