/**
 * The Wasm "name" custom section, trimmed of its local names (subsection 2).
 *
 * V8 keeps a module's whole binary for the life of the module (lazy compilation reads it), name section
 * included. Function names are worth their bytes: traps and stack traces print them. Local names are not: only a
 * debugger shows them, and the sidecar has none. binaryen's round trip in the watchdog rewrite names every local
 * it adds ("scratch", "scratch_6"): 0.36 MB of the Go add-header plugin's 7.2 MB rewrite, where the Go toolchain
 * had emitted no local names at all.
 */

import { encodeU32, readName, readU32, SectionId, sectionsOf, WasmBinaryError } from './binary';

const NAME_SECTION = 'name';
const LOCAL_NAMES_SUBSECTION = 2;

/**
 * `bytes` with the local names dropped from its name section; every other byte as it was. The same bytes (not a
 * copy) when there is nothing to drop.
 */
export function withoutLocalNames(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let copiedTo = 0;
  for (const { id, start: sectionStart, contentStart, end } of sectionsOf(bytes)) {
    if (id !== SectionId.Custom) continue;
    const [name, subsectionsStart] = readName(bytes, contentStart);
    if (name !== NAME_SECTION) continue;
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
    parts.push(bytes.subarray(copiedTo, sectionStart), Uint8Array.of(SectionId.Custom), encodeU32(content.length), content);
    copiedTo = end;
  }
  if (copiedTo === 0) return bytes;
  parts.push(bytes.subarray(copiedTo));
  return Buffer.concat(parts);
}
