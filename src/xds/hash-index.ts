/**
 * A table from a 31-bit hash (a non-negative int) to one value, open addressing with linear probing over an
 * Int32Array. For the EDS name-hash index: a SotW response at 10 000 CLAs looks up 10 000 hashes, and a Map with
 * number keys cost ~200 ns per lookup there (its chains are scattered over half a megabyte); this is a probe or
 * two into 4 bytes per slot. Keys are hashes, not names: a caller checks what a value is before trusting it.
 */
const EMPTY = -1;
const DELETED = -2;
const MIN_CAPACITY = 16;

export class HashIndex<V> {
  private keys = new Int32Array(MIN_CAPACITY).fill(EMPTY);
  private values: (V | undefined)[] = new Array<V | undefined>(MIN_CAPACITY).fill(undefined);
  /** Slots holding a key. */
  private live = 0;
  /** Slots not EMPTY (keys and deleted ones): kept at most half the table so that probes end quickly. */
  private used = 0;

  get size(): number {
    return this.live;
  }

  get(hash: number): V | undefined {
    const keys = this.keys;
    const mask = keys.length - 1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const k = keys[s]!;
      if (k === hash) return this.values[s];
      if (k === EMPTY) return undefined;
    }
  }

  /** Files `value` under `hash`, replacing what was there. */
  set(hash: number, value: V): void {
    if (hash < 0 || hash > 0x7fffffff || !Number.isInteger(hash)) throw new RangeError(`not a 31-bit hash: ${hash}`);
    const keys = this.keys;
    const mask = keys.length - 1;
    let free = -1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const k = keys[s]!;
      if (k === hash) {
        this.values[s] = value;
        return;
      }
      if (k === DELETED && free < 0) free = s;
      if (k === EMPTY) {
        if (free < 0) {
          free = s;
          this.used++;
        }
        break;
      }
    }
    keys[free] = hash;
    this.values[free] = value;
    this.live++;
    if (this.used * 2 > keys.length) this.rebuild();
  }

  delete(hash: number): void {
    const keys = this.keys;
    const mask = keys.length - 1;
    for (let s = hash & mask; ; s = (s + 1) & mask) {
      const k = keys[s]!;
      if (k === EMPTY) return;
      if (k === hash) {
        keys[s] = DELETED;
        this.values[s] = undefined;
        this.live--;
        return;
      }
    }
  }

  /** A table four times the live keys (at least MIN_CAPACITY), without the deleted slots. */
  private rebuild(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    let capacity = MIN_CAPACITY;
    while (capacity < this.live * 4) capacity *= 2;
    this.keys = new Int32Array(capacity).fill(EMPTY);
    this.values = new Array<V | undefined>(capacity).fill(undefined);
    this.live = 0;
    this.used = 0;
    for (let s = 0; s < oldKeys.length; s++) if (oldKeys[s]! >= 0) this.set(oldKeys[s]!, oldValues[s]!);
  }
}
