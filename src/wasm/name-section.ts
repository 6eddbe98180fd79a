/**
 * The Wasm "name" custom section, trimmed of its local names (subsection 2).
 *
 * V8 keeps a module's whole binary for the life of the module (lazy compilation reads it), name section
 * included. Function names are worth their bytes: traps and stack traces print them. Local names are not: only a
 * debugger shows them, and the sidecar has none. binaryen's round trip in the watchdog rewrite names every local
 * it adds ("scratch", "scratch_6"): 0.36 MB of the Go add-header plugin's 7.2 MB rewrite, where the Go toolchain
 * had emitted no local names at all.
 */

const NAME_SECTION = 'name';
const CUSTOM_SECTION_ID = 0;
const LOCAL_NAMES_SUBSECTION = 2;
const HEADER_BYTES = 8; // "\0asm" and the version

export class WasmBinaryError extends Error {
  override name = 'WasmBinaryError';
}

/** An unsigned LEB128 at `offset`: its value and the offset after it. */
function readU32(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let p = offset; p < bytes.length && shift < 35; p++, shift += 7) {
    const byte = bytes[p]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, p + 1];
  }
  throw new WasmBinaryError(`truncated or overlong LEB128 at byte ${offset}`);
}

function u32(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  do {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    out.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return Buffer.from(out);
}

/**
 * `bytes` with the local names dropped from its name section; every other byte as it was. The same bytes (not a
 * copy) when there is nothing to drop.
 */
export function withoutLocalNames(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let copiedTo = 0;
  let offset = HEADER_BYTES;
  while (offset < bytes.length) {
    const sectionStart = offset;
    const id = bytes[offset]!;
    const [size, contentStart] = readU32(bytes, offset + 1);
    const end = contentStart + size;
    if (end > bytes.length) throw new WasmBinaryError(`section ${id} at byte ${sectionStart} runs past the end of the module`);
    offset = end;
    if (id !== CUSTOM_SECTION_ID) continue;
    const [nameLength, nameStart] = readU32(bytes, contentStart);
    const subsectionsStart = nameStart + nameLength;
    if (Buffer.from(bytes.buffer, bytes.byteOffset + nameStart, nameLength).toString('utf8') !== NAME_SECTION) continue;
    const kept: Uint8Array[] = [];
    let dropped = false;
    for (let p = subsectionsStart; p < end;) {
      const subId = bytes[p]!;
      const [subSize, subContent] = readU32(bytes, p + 1);
      const subEnd = subContent + subSize;
      if (subEnd > end) throw new WasmBinaryError(`name subsection ${subId} at byte ${p} runs past its section`);
      if (subId === LOCAL_NAMES_SUBSECTION) dropped = true;
      else kept.push(bytes.subarray(p, subEnd));
      p = subEnd;
    }
    if (!dropped) continue;
    const content = Buffer.concat([bytes.subarray(contentStart, subsectionsStart), ...kept]);
    parts.push(bytes.subarray(copiedTo, sectionStart), Uint8Array.of(CUSTOM_SECTION_ID), u32(content.length), content);
    copiedTo = end;
  }
  if (copiedTo === 0) return bytes;
  parts.push(bytes.subarray(copiedTo));
  return Buffer.concat(parts);
}
