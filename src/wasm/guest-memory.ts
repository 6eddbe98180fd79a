/**
 * Bounds-checked access to a guest's linear memory. Every accessor checks that `memory.buffer` is still the
 * buffer its cached views were made for (a grow detaches the old ArrayBuffer) and returns undefined/false for
 * an out-of-range pointer: a bad pointer becomes InvalidMemoryAccess in the caller, never an exception thrown
 * through V8 (cpp-host wasm_vm.h). Views are cached per buffer because allocating a DataView per access
 * dominated the host's cost per Redis call.
 */
/** Accesses this large cost the host enough (tens of µs and up) to be worth a clock read. */
export const LARGE_ACCESS_BYTES = 64 * 1024;

export class GuestMemory {
  private buffer: ArrayBuffer;
  /** A Buffer over the whole memory, so strings decode from it at an offset without a Buffer per string. */
  private bytes: Buffer;
  private data: DataView;

  /**
   * `onLargeAccess` runs before a view or string of at least LARGE_ACCESS_BYTES is handed to the host (the
   * watchdog's poll: host work on large guest buffers is where guest time goes without guest hooks running).
   */
  constructor(private readonly memory: WebAssembly.Memory, private readonly onLargeAccess?: () => void) {
    this.buffer = memory.buffer;
    this.bytes = Buffer.from(this.buffer);
    this.data = new DataView(this.buffer);
  }

  private refresh(): void {
    // memory.grow detaches the old buffer (its length becomes 0): until then the native getter need not be read.
    if (this.buffer.byteLength !== 0) return;
    const current = this.memory.buffer;
    if (current !== this.buffer) {
      this.buffer = current;
      this.bytes = Buffer.from(current);
      this.data = new DataView(current);
    }
  }

  get size(): number {
    return this.memory.buffer.byteLength;
  }

  /** Pointers and lengths arrive as signed i32; both are reinterpreted as u32 before the bounds check. */
  private inBounds(ptr: number, len: number): boolean {
    this.refresh();
    return ptr + len <= this.buffer.byteLength;
  }

  /** A view (valid until the next guest call), or undefined if out of bounds. */
  view(ptr: number, len: number): Uint8Array | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (!this.inBounds(ptr, len)) return undefined;
    if (len >= LARGE_ACCESS_BYTES) this.onLargeAccess?.();
    return this.bytes.subarray(ptr, ptr + len);
  }

  /**
   * The whole linear memory as bytes once [ptr, ptr + len) is checked to be in bounds, else undefined: for host
   * code that reads or writes at `ptr >>> 0` itself, without a view per access (a subarray costs V8 more than
   * hashing a header name). Valid until the next guest call.
   */
  bytesAt(ptr: number, len: number): Uint8Array | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (!this.inBounds(ptr, len)) return undefined;
    if (len >= LARGE_ACCESS_BYTES) this.onLargeAccess?.();
    return this.bytes;
  }

  /** A copy that outlives guest calls. */
  copy(ptr: number, len: number): Buffer | undefined {
    const v = this.view(ptr, len);
    return v === undefined ? undefined : Buffer.from(v);
  }

  /** UTF-8 string at (ptr, len); (0, 0) is the empty string. */
  string(ptr: number, len: number): string | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (len === 0) return '';
    if (!this.inBounds(ptr, len)) return undefined;
    if (len >= LARGE_ACCESS_BYTES) this.onLargeAccess?.();
    return this.bytes.toString('utf8', ptr, ptr + len);
  }

  private cachedPtr = -1;
  private cachedBytes: Uint8Array = new Uint8Array(0);
  private cachedString = '';

  /**
   * string(), remembering the last result: a plugin passes the same name (a Redis cluster) at the same address
   * on every call, so when (ptr, len) and the bytes there are unchanged the previous string is returned without
   * decoding (and its hash, cached by V8, serves the Map lookups that follow).
   */
  stringCached(ptr: number, len: number): string | undefined {
    ptr >>>= 0;
    len >>>= 0;
    if (len === 0) return '';
    if (!this.inBounds(ptr, len)) return undefined;
    const bytes = this.bytes;
    const cached = this.cachedBytes;
    if (ptr === this.cachedPtr && len === cached.length) {
      let i = 0;
      while (i < len && bytes[ptr + i] === cached[i]) i++;
      if (i === len) return this.cachedString;
    }
    const value = Buffer.from(this.buffer, ptr, len).toString('utf8');
    this.cachedPtr = ptr;
    this.cachedBytes = bytes.slice(ptr, ptr + len);
    this.cachedString = value;
    return value;
  }

  write(ptr: number, bytes: Uint8Array): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, bytes.byteLength)) return false;
    this.bytes.set(bytes, ptr);
    return true;
  }

  setU32(ptr: number, value: number): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return false;
    this.data.setUint32(ptr, value >>> 0, true);
    return true;
  }

  getU32(ptr: number): number | undefined {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return undefined;
    return this.data.getUint32(ptr, true);
  }

  setU64(ptr: number, value: bigint): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 8)) return false;
    this.data.setBigUint64(ptr, BigInt.asUintN(64, value), true);
    return true;
  }
}
