/**
 * Bounds-checked access to a guest's linear memory. Every accessor re-reads `memory.buffer` (a grow detaches
 * the old ArrayBuffer) and returns undefined/false for an out-of-range pointer: a bad pointer becomes
 * InvalidMemoryAccess in the caller, never an exception thrown through V8 (cpp-host wasm_vm.h).
 */
export class GuestMemory {
  constructor(private readonly memory: WebAssembly.Memory) {}

  get size(): number {
    return this.memory.buffer.byteLength;
  }

  private inBounds(ptr: number, len: number): boolean {
    return Number.isInteger(ptr) && Number.isInteger(len) && ptr >= 0 && len >= 0 && ptr + len <= this.memory.buffer.byteLength;
  }

  /** A view (valid until the next guest call), or undefined if out of bounds. */
  view(ptr: number, len: number): Uint8Array | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (!this.inBounds(ptr, len)) return undefined;
    return new Uint8Array(this.memory.buffer, ptr, len);
  }

  /** A copy that outlives guest calls. */
  copy(ptr: number, len: number): Buffer | undefined {
    const v = this.view(ptr, len);
    return v === undefined ? undefined : Buffer.from(v);
  }

  /** UTF-8 string at (ptr, len); (0, 0) is the empty string. */
  string(ptr: number, len: number): string | undefined {
    if ((len >>> 0) === 0) return '';
    const v = this.view(ptr, len);
    return v === undefined ? undefined : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  }

  write(ptr: number, bytes: Uint8Array): boolean {
    const v = this.view(ptr, bytes.byteLength);
    if (v === undefined) return false;
    v.set(bytes);
    return true;
  }

  setU32(ptr: number, value: number): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return false;
    new DataView(this.memory.buffer).setUint32(ptr, value >>> 0, true);
    return true;
  }

  getU32(ptr: number): number | undefined {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return undefined;
    return new DataView(this.memory.buffer).getUint32(ptr, true);
  }

  setU64(ptr: number, value: bigint): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 8)) return false;
    new DataView(this.memory.buffer).setBigUint64(ptr, BigInt.asUintN(64, value), true);
    return true;
  }
}
