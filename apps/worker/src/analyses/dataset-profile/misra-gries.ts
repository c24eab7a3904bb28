import { hashKey } from './hyperloglog.ts';
import { type CountKey, ownKey } from './value-kind.ts';

/**
 * Misra–Gries frequent values (Misra & Gries 1982): at most `limit` counters; a new value when all
 * are taken decrements every counter instead. Each count then underestimates by at most
 * n / (limit + 1), and any value more frequent than that is kept.
 *
 * An open-addressing table keyed by each value's {@link hashKey} (which the column's HyperLogLog
 * needs anyway), with keys compared on a hash match so counts stay exact per value. It replaced a
 * `Map`: on a column of unique values every value is inserted and soon evicted, and the Map's
 * insert/delete churn was a quarter of the profiler's time. Here a value costs a probe or two in
 * typed arrays, numbers allocate nothing, and evicting is a rebuild of at most `limit` survivors,
 * at most once per `limit + 1` values.
 */
export class MisraGries {
  private readonly mask: number;
  /**
   * Slot `i` is `table[3i, 3i + 3)`: the key's hash, its count (0 marks an empty slot) and, for a
   * number key, the number. One array, so a probe reads one cache line, not three.
   */
  private readonly table: Float64Array;
  /**
   * The key of a slot holding a string; undefined for a number (in `table`) and for an empty slot.
   * A summary of numbers alone never reads or writes it (see {@link stringKeys}): on a numeric
   * column, that is a sixth of the memory each update would bring into the cache.
   */
  private readonly strings: (string | undefined)[];
  /** How many of the counted keys are strings. */
  private stringKeys = 0;
  /** The slots in use, `occupied[0, used)`: evicting visits these, not the whole table. */
  private readonly occupied: Int32Array;
  /** Where {@link decrementAll} keeps the survivors while it rebuilds: `[hash, count, number]` each. */
  private readonly spare: Float64Array;
  private readonly spareStrings: (string | undefined)[];
  private used = 0;

  constructor(private readonly limit: number) {
    // A power of two at least 2 × (limit + 1): the load stays under 1/2, so probes are short,
    // and a column's table (48 KiB at the default limit) stays small in the cache.
    let capacity = 1;
    while (capacity < 2 * (limit + 1)) capacity *= 2;
    this.mask = capacity - 1;
    this.table = new Float64Array(capacity * 3);
    this.strings = new Array<string | undefined>(capacity).fill(undefined);
    this.occupied = new Int32Array(limit + 1);
    this.spare = new Float64Array(3 * limit);
    this.spareStrings = new Array<string | undefined>(limit).fill(undefined);
  }

  /**
   * A summary of `entries` (distinct keys): exact counts, or the counters of summaries being
   * merged, added up. Above `limit` keys every count is lowered by the (limit + 1)-th largest and
   * those left at zero or below are dropped (Agarwal et al., "Mergeable Summaries", 2012): the
   * result keeps the bound of one summary over all the values. One key over the limit, as when a
   * column passes the exact limit, is the plain Misra–Gries step: that key has count 1, so every
   * count is lowered by one.
   */
  static from(entries: Iterable<[CountKey, number]>, limit: number): MisraGries {
    let list = [...entries];
    if (list.length > limit) {
      const cut = list.map(([, count]) => count).sort((a, b) => b - a)[limit] as number;
      list = list.filter(([, count]) => count > cut).map(([key, count]): [CountKey, number] => [key, count - cut]);
    }
    const summary = new MisraGries(limit);
    for (const [key, count] of list) summary.insert(ownKey(key), hashKey(key), count);
    return summary;
  }

  get size(): number {
    return this.used;
  }

  /** Counts one `key`, whose {@link hashKey} is `hash`. */
  add(key: CountKey, hash: number): void {
    const { table, mask } = this;
    let i = (hash >>> 0) & mask;
    for (;;) {
      const count = table[3 * i + 1] as number;
      if (count === 0) break;
      if (table[3 * i] === hash && this.holds(i, key)) {
        table[3 * i + 1] = count + 1;
        // Counted twice: no longer a passing value, so it gets a string of its own (see ownKey).
        if (count === 1) this.own(i);
        return;
      }
      i = (i + 1) & mask;
    }
    if (this.used < this.limit) this.put(i, key, hash, 1);
    else this.decrementAll();
  }

  entries(): [CountKey, number][] {
    const out: [CountKey, number][] = [];
    for (let i = 0; i <= this.mask; i++) {
      const count = this.table[3 * i + 1] as number;
      if (count > 0) out.push([this.keyAt(i), count]);
    }
    return out;
  }

  private holds(i: number, key: CountKey): boolean {
    if (typeof key !== 'number') return this.strings[i] === key;
    return this.table[3 * i + 2] === key && (this.stringKeys === 0 || this.strings[i] === undefined);
  }

  private keyAt(i: number): CountKey {
    return this.strings[i] ?? (this.table[3 * i + 2] as number);
  }

  private insert(key: CountKey, hash: number, count: number): void {
    let i = (hash >>> 0) & this.mask;
    while ((this.table[3 * i + 1] as number) !== 0) i = (i + 1) & this.mask;
    this.put(i, key, hash, count);
  }

  private put(i: number, key: CountKey, hash: number, count: number): void {
    this.table[3 * i] = hash;
    this.table[3 * i + 1] = count;
    // An empty slot's string is undefined already (see decrementAll).
    if (typeof key === 'number') this.table[3 * i + 2] = key;
    else {
      this.strings[i] = key;
      this.stringKeys++;
    }
    this.occupied[this.used++] = i;
  }

  /**
   * Slot `i`'s string key as a string of its own (see ownKey). A key is put as it came, often a
   * view of its 64 KiB batch: copying every new value of a column of unique values slowed the
   * taxi-like file by a sixth, and a value counted once is dropped by the next eviction. So a key
   * is copied when it is counted a second time, and any count above 1 holds an owned key (`from`
   * owns its keys too): only the keys counted once since the last eviction, at most `limit`, are
   * views.
   */
  private own(i: number): void {
    if (this.stringKeys === 0) return;
    const key = this.strings[i];
    if (key !== undefined) this.strings[i] = ownKey(key) as string;
  }

  /**
   * Every counter minus one; those at zero are dropped and the table is rebuilt from the rest. The
   * survivors wait in `spare` (a second table laid out like `table`, slot by slot in `occupied`
   * order), so a rebuild allocates nothing: on a column of unique values it runs once per
   * `limit + 1` values, each time with few survivors.
   */
  private decrementAll(): void {
    const { table, spare, strings, spareStrings } = this;
    const withStrings = this.stringKeys > 0;
    let kept = 0;
    for (let n = 0; n < this.used; n++) {
      const i = this.occupied[n] as number;
      const count = table[3 * i + 1] as number;
      if (count > 1) {
        spare[3 * kept] = table[3 * i] as number;
        spare[3 * kept + 1] = count - 1;
        spare[3 * kept + 2] = table[3 * i + 2] as number;
        if (withStrings) spareStrings[kept] = strings[i];
        kept++;
      }
      table[3 * i + 1] = 0;
      if (withStrings) strings[i] = undefined;
    }
    this.used = 0;
    this.stringKeys = 0;
    for (let n = 0; n < kept; n++) {
      const hash = spare[3 * n] as number;
      const text = withStrings ? spareStrings[n] : undefined;
      if (withStrings) spareStrings[n] = undefined;
      this.insert(text ?? (spare[3 * n + 2] as number), hash, spare[3 * n + 1] as number);
    }
  }
}
