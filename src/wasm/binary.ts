/**
 * The few pieces of the Wasm binary format the host reads and rewrites itself (the name section, the watchdog's
 * hooks): LEB128 numbers and the section list. Everything structural (imports, globals, renumbering) is binaryen's.
 */

export class WasmBinaryError extends Error {
  override name = 'WasmBinaryError';
}

/** "\0asm" and the version. */
const HEADER_BYTES = 8;

export const SectionId = {
  Custom: 0,
  Import: 2,
  Export: 7,
  Code: 10,
} as const;

/** An unsigned LEB128 of at most 32 bits at `offset`: its value and the offset after it. */
export function readU32(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let p = offset; p < bytes.length && shift < 35; p++, shift += 7) {
    const byte = bytes[p]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, p + 1];
  }
  throw new WasmBinaryError(`truncated or overlong LEB128 at byte ${offset}`);
}

/** The offset after a LEB128 (signed or unsigned) of at most `maxBits` at `offset`; its value is not needed. */
export function skipLeb(bytes: Uint8Array, offset: number, maxBits: number): number {
  const maxBytes = Math.ceil(maxBits / 7);
  for (let p = offset; p < bytes.length && p - offset < maxBytes; p++) {
    if ((bytes[p]! & 0x80) === 0) return p + 1;
  }
  throw new WasmBinaryError(`truncated or overlong LEB128 at byte ${offset}`);
}

/** `value` as an unsigned LEB128. */
export function encodeU32(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  do {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    out.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return Uint8Array.from(out);
}

export interface Section {
  readonly id: number;
  /** Offset of the id byte. */
  readonly start: number;
  /** Offset of the content, after the size. */
  readonly contentStart: number;
  /** Offset after the content. */
  readonly end: number;
}

/** The module's sections in order; a section that runs past the end is a WasmBinaryError. */
export function* sectionsOf(bytes: Uint8Array): Generator<Section> {
  let offset = HEADER_BYTES;
  while (offset < bytes.length) {
    const start = offset;
    const id = bytes[offset]!;
    const [size, contentStart] = readU32(bytes, offset + 1);
    const end = contentStart + size;
    if (end > bytes.length) throw new WasmBinaryError(`section ${id} at byte ${start} runs past the end of the module`);
    yield { id, start, contentStart, end };
    offset = end;
  }
}

/** A UTF-8 name (length-prefixed) at `offset`: the name and the offset after it. */
export function readName(bytes: Uint8Array, offset: number): [name: string, next: number] {
  const [length, start] = readU32(bytes, offset);
  if (start + length > bytes.length) throw new WasmBinaryError(`name at byte ${offset} runs past the end of the module`);
  return [Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString('utf8'), start + length];
}

/** External kinds, as import and export entries name them. */
export const ExternalKind = { Function: 0, Table: 1, Memory: 2, Global: 3, Tag: 4 } as const;

/** The index of the export `name` of `kind`, or undefined when the module exports no such thing. */
export function exportIndex(bytes: Uint8Array, name: string, kind: number): number | undefined {
  for (const section of sectionsOf(bytes)) {
    if (section.id !== SectionId.Export) continue;
    const [count, first] = readU32(bytes, section.contentStart);
    let p = first;
    for (let i = 0; i < count; i++) {
      const [entryName, afterName] = readName(bytes, p);
      const [index, next] = readU32(bytes, afterName + 1);
      if (entryName === name && bytes[afterName] === kind) return index;
      p = next;
    }
    return undefined;
  }
  return undefined;
}

/** The offset after a table's or memory's limits (flags: bit 0 a maximum follows, bit 2 64-bit). */
function skipLimits(bytes: Uint8Array, p: number): number {
  const flags = bytes[p]!;
  const bits = (flags & 0x04) !== 0 ? 64 : 32;
  const afterMin = skipLeb(bytes, p + 1, bits);
  return (flags & 0x01) !== 0 ? skipLeb(bytes, afterMin, bits) : afterMin;
}

/** The prefixes of `ref null ht` and `ref ht` (GC, typed function references): a heap type (s33) follows. */
export const RefTypePrefix = { Nullable: 0x63, NonNullable: 0x64 } as const;

/** Whether the byte at `p` starts a two-part reference type. */
export function isRefTypePrefix(bytes: Uint8Array, p: number): boolean {
  const t = bytes[p];
  return t === RefTypePrefix.Nullable || t === RefTypePrefix.NonNullable;
}

/** The offset after a value type (a reference type's heap type included). */
export function skipValueType(bytes: Uint8Array, p: number): number {
  return isRefTypePrefix(bytes, p) ? skipLeb(bytes, p + 1, 33) : p + 1;
}

/** The function index of the import `module`.`name`, or undefined when the module imports no such function. */
export function functionImportIndex(bytes: Uint8Array, module: string, name: string): number | undefined {
  for (const section of sectionsOf(bytes)) {
    if (section.id !== SectionId.Import) continue;
    const [count, first] = readU32(bytes, section.contentStart);
    let functions = 0;
    let p = first;
    for (let i = 0; i < count; i++) {
      const [moduleName, afterModule] = readName(bytes, p);
      const [fieldName, afterField] = readName(bytes, afterModule);
      const kind = bytes[afterField]!;
      const desc = afterField + 1;
      switch (kind) {
        case ExternalKind.Function:
          if (moduleName === module && fieldName === name) return functions;
          functions++;
          p = skipLeb(bytes, desc, 32);
          break;
        case ExternalKind.Table: p = skipLimits(bytes, skipValueType(bytes, desc)); break;
        case ExternalKind.Memory: p = skipLimits(bytes, desc); break;
        case ExternalKind.Global: p = skipValueType(bytes, desc) + 1; break;
        case ExternalKind.Tag: p = skipLeb(bytes, desc + 1, 32); break;
        default: throw new WasmBinaryError(`unknown import kind ${kind} at byte ${afterField}`);
      }
    }
    return undefined;
  }
  return undefined;
}
