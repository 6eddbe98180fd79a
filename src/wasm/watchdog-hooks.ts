/**
 * Where the watchdog's counter hooks go, and putting them there (the deadline half of src/wasm/instrument.ts).
 *
 * A hook is a few inline instructions: decrement the budget global, and when it reaches zero ask the host's check
 * for a fresh budget, trapping when it answers 0. Execution that never ends must pass some point unboundedly
 * often, and the hooks need only be on those points:
 *
 * - **every loop header** (a hook right after `loop`, which a branch back to the loop also runs);
 * - **the entry of every function that makes a call** (`call`, `call_indirect`, `call_ref` and their tail-call
 *   forms): without loops, an activation runs a bounded number of its own instructions, so unbounded execution
 *   without loops needs unboundedly many activations of functions that call. A function that reaches a `loop`
 *   before any branch or call needs no entry hook (the loop's runs at every entry: Go's functions begin so), and
 *   a leaf (no call) needs none at all.
 *
 * binaryen's log-execution pass, which placed them before, also hooks every function entry, every `return` and
 * every function's last expression: for the Go SDK, whose every function is a loop with a dispatch table (Go's
 * Wasm backend resumes a function by branching to its loop), that is three hooks per call where one does. In the
 * Go add-header plugin they were 1 740 hooks per HTTP stream, about 9 µs of its CPU.
 *
 * The rewrite works on the bytes binaryen emitted (it does not walk binaryen's IR from JS, which for a 6 MB
 * module is slow): it decodes each function body's instructions only far enough to find loop headers and calls,
 * and copies everything else as it was. Function and global indices do not change, so no other section does.
 */
import { encodeU32, isRefTypePrefix, readU32, SectionId, sectionsOf, skipLeb, skipValueType, WasmBinaryError } from './binary';

export interface HookTargets {
  /** Index of the mutable i32 budget global. */
  readonly budgetGlobal: number;
  /** Index of the `() -> i32` host function a hook calls when the budget is spent: a fresh budget, or 0. */
  readonly check: number;
}

export interface HookCounts {
  readonly loops: number;
  readonly entries: number;
  /** Functions with neither a loop nor a call: bounded on their own, no hook. */
  readonly leaves: number;
  /** Functions that call but reach a loop first, whose hook stands for the entry's. */
  readonly loopAtEntry: number;
}

/** HookCounts while they are being counted. */
type Tally = { -readonly [K in keyof HookCounts]: number };

const Op = {
  Unreachable: 0x00,
  Nop: 0x01,
  Block: 0x02,
  Loop: 0x03,
  If: 0x04,
  Try: 0x06,
  End: 0x0b,
  Call: 0x10,
  ReturnCallRef: 0x15,
  Drop: 0x1a,
  BrOnNull: 0xd5,
  BrOnNonNull: 0xd6,
  GlobalGet: 0x23,
  GlobalSet: 0x24,
  I32Const: 0x41,
  I32Eqz: 0x45,
  I32Sub: 0x6b,
  I32LeS: 0x4c,
  EmptyBlockType: 0x40,
} as const;

/**
 * `budget -= 1; if (budget <= 0) { budget = check(); if (budget == 0) unreachable; }`: stack-neutral and without
 * locals, so it fits anywhere an instruction does. `unreachable` is a trap, which Wasm code cannot catch.
 */
function hookBytes(targets: HookTargets): Uint8Array {
  const g = encodeU32(targets.budgetGlobal);
  return Uint8Array.from([
    Op.GlobalGet, ...g, Op.I32Const, 1, Op.I32Sub, Op.GlobalSet, ...g,
    Op.GlobalGet, ...g, Op.I32Const, 0, Op.I32LeS,
    Op.If, Op.EmptyBlockType,
    Op.Call, ...encodeU32(targets.check), Op.GlobalSet, ...g,
    Op.GlobalGet, ...g, Op.I32Eqz, Op.If, Op.EmptyBlockType, Op.Unreachable, Op.End,
    Op.End,
  ]);
}

/** A block type: empty (0x40), a value type, or a type index (s33); the offset after it. */
function skipBlockType(bytes: Uint8Array, p: number): number {
  return isRefTypePrefix(bytes, p) ? skipValueType(bytes, p) : skipLeb(bytes, p, 33);
}

/** A memory access's alignment (with the multi-memory flag, bit 6: a memory index follows) and offset. */
function skipMemarg(bytes: Uint8Array, p: number): number {
  const [align, next] = readU32(bytes, p);
  const afterIndex = (align & 0x40) !== 0 ? skipLeb(bytes, next, 32) : next;
  return skipLeb(bytes, afterIndex, 64);
}

const u32 = (bytes: Uint8Array, p: number): number => skipLeb(bytes, p, 32);

/** 0xFC: saturating truncation, bulk memory, tables. */
function skipMiscImmediates(bytes: Uint8Array, sub: number, p: number, at: number): number {
  if (sub <= 7) return p;
  switch (sub) {
    case 8: return u32(bytes, u32(bytes, p)); // memory.init data mem
    case 9: return u32(bytes, p); // data.drop
    case 10: return u32(bytes, u32(bytes, p)); // memory.copy mem mem
    case 11: return u32(bytes, p); // memory.fill
    case 12: return u32(bytes, u32(bytes, p)); // table.init elem table
    case 13: return u32(bytes, p); // elem.drop
    case 14: return u32(bytes, u32(bytes, p)); // table.copy
    case 15: case 16: case 17: return u32(bytes, p); // table.grow / size / fill
    default: throw new WasmBinaryError(`unknown instruction 0xfc ${sub} at byte ${at}`);
  }
}

/** 0xFD: SIMD (and relaxed SIMD, which has no immediates). */
function skipSimdImmediates(bytes: Uint8Array, sub: number, p: number): number {
  if (sub <= 11 || sub === 92 || sub === 93) return skipMemarg(bytes, p); // loads, splat loads, store, load_zero
  if (sub === 12 || sub === 13) return p + 16; // v128.const, i8x16.shuffle
  if (sub >= 21 && sub <= 34) return p + 1; // extract_lane / replace_lane
  if (sub >= 84 && sub <= 91) return skipMemarg(bytes, p) + 1; // load_lane / store_lane
  return p;
}

/** 0xFE: threads (atomics). */
function skipAtomicImmediates(bytes: Uint8Array, sub: number, p: number, at: number): number {
  if (sub === 3) return p + 1; // atomic.fence 0x00
  if (sub <= 2 || (sub >= 0x10 && sub <= 0x4e)) return skipMemarg(bytes, p);
  throw new WasmBinaryError(`unknown instruction 0xfe ${sub} at byte ${at}`);
}

/**
 * The offset after the immediates of the instruction whose opcode is at `at` (`p` is just past the opcode).
 * An opcode this does not know is a WasmBinaryError: a hook misplaced by a misread is worse than no rewrite.
 */
function skipImmediates(bytes: Uint8Array, op: number, p: number, at: number): number {
  if (op >= 0x45 && op <= 0xc4) return p; // numeric, comparison, conversion, sign extension
  if (op >= 0x28 && op <= 0x3e) return skipMemarg(bytes, p);
  if (op >= 0x20 && op <= 0x26) return u32(bytes, p); // local.*, global.*, table.get/set
  switch (op) {
    case 0x00: case 0x01: case 0x05: case 0x0a: case 0x0b: case 0x0f: case 0x19: case 0x1a: case 0x1b:
    case 0xd1: case 0xd3: case 0xd4:
      return p;
    case Op.Block: case Op.Loop: case Op.If: case Op.Try:
      return skipBlockType(bytes, p);
    case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x14: case 0x15: case 0x18:
    case 0xd2: case 0xd5: case 0xd6:
      return u32(bytes, p); // catch/throw tag, rethrow/br/br_if/delegate label, call, ref.func, br_on_(non_)null
    case 0x0e: { // br_table
      const [n, next] = readU32(bytes, p);
      let q = next;
      for (let i = 0; i <= n; i++) q = u32(bytes, q);
      return q;
    }
    case 0x11: case 0x13: return u32(bytes, u32(bytes, p)); // call_indirect type table
    case 0x1c: { // select t*
      const [n, next] = readU32(bytes, p);
      let q = next;
      for (let i = 0; i < n; i++) q = skipValueType(bytes, q);
      return q;
    }
    case 0x1f: { // try_table bt catch*
      const [n, next] = readU32(bytes, skipBlockType(bytes, p));
      let q = next;
      for (let i = 0; i < n; i++) {
        const kind = bytes[q]!;
        q = kind <= 1 ? u32(bytes, u32(bytes, q + 1)) : u32(bytes, q + 1); // catch(_ref) tag label; catch_all(_ref) label
      }
      return q;
    }
    case 0x3f: case 0x40: return u32(bytes, p); // memory.size / grow
    case 0x41: return skipLeb(bytes, p, 32);
    case 0x42: return skipLeb(bytes, p, 64);
    case 0x43: return p + 4;
    case 0x44: return p + 8;
    case 0xd0: return skipLeb(bytes, p, 33); // ref.null ht
    case 0xfc: { const [sub, next] = readU32(bytes, p); return skipMiscImmediates(bytes, sub, next, at); }
    case 0xfd: { const [sub, next] = readU32(bytes, p); return skipSimdImmediates(bytes, sub, next); }
    case 0xfe: { const [sub, next] = readU32(bytes, p); return skipAtomicImmediates(bytes, sub, next, at); }
    default: throw new WasmBinaryError(`unknown instruction 0x${op.toString(16)} at byte ${at}`);
  }
}

/**
 * Instructions after which execution goes on to the next one (or traps): entering a block, and everything that is
 * not control flow. A branch, `if`, call, return or throw may not.
 */
const runsOn = (op: number): boolean => op === Op.Block || op === Op.Nop || (op >= Op.Drop && op !== Op.BrOnNull && op !== Op.BrOnNonNull);

const isCall = (op: number): boolean => op >= Op.Call && op <= Op.ReturnCallRef; // call .. return_call_ref

/** One function body (after its size) with hooks added; `counts` gains what was placed. */
function hookBody(bytes: Uint8Array, start: number, end: number, hook: Uint8Array, counts: Tally): Uint8Array[] {
  const [groups, afterCount] = readU32(bytes, start);
  let codeStart = afterCount;
  for (let i = 0; i < groups; i++) codeStart = skipValueType(bytes, u32(bytes, codeStart));
  const out: Uint8Array[] = [bytes.subarray(start, codeStart)];
  let copied = codeStart;
  let calls = false;
  let loops = 0;
  // Until the first control instruction, every activation runs on: a loop reached so hooks every entry.
  let straight = true;
  let loopAtEntry = false;
  for (let p = codeStart; p < end;) {
    const at = p;
    const op = bytes[p]!;
    p = skipImmediates(bytes, op, p + 1, at);
    if (p > end) throw new WasmBinaryError(`instruction at byte ${at} runs past its function body`);
    if (op === Op.Loop) {
      out.push(bytes.subarray(copied, p), hook);
      copied = p;
      loops++;
      if (straight) loopAtEntry = true;
    } else if (isCall(op)) {
      calls = true;
    }
    if (straight && !runsOn(op)) straight = false;
  }
  out.push(bytes.subarray(copied, end));
  counts.loops += loops;
  if (calls && !loopAtEntry) {
    out.splice(1, 0, hook);
    counts.entries++;
  } else if (calls) {
    counts.loopAtEntry++;
  } else if (loops === 0) {
    counts.leaves++;
  }
  return out;
}

/** `bytes` with the watchdog's hooks in its code section; every other section as it was. */
export function placeWatchdogHooks(bytes: Uint8Array, targets: HookTargets): { bytes: Uint8Array; counts: HookCounts } {
  const hook = hookBytes(targets);
  const counts: Tally = { loops: 0, entries: 0, leaves: 0, loopAtEntry: 0 };
  for (const section of sectionsOf(bytes)) {
    if (section.id !== SectionId.Code) continue;
    const [functions, first] = readU32(bytes, section.contentStart);
    const bodies: Uint8Array[] = [encodeU32(functions)];
    let p = first;
    for (let i = 0; i < functions; i++) {
      const [size, bodyStart] = readU32(bytes, p);
      const bodyEnd = bodyStart + size;
      if (bodyEnd > section.end) throw new WasmBinaryError(`function body ${i} at byte ${p} runs past the code section`);
      const parts = hookBody(bytes, bodyStart, bodyEnd, hook, counts);
      bodies.push(encodeU32(parts.reduce((n, part) => n + part.length, 0)), ...parts);
      p = bodyEnd;
    }
    if (p !== section.end) throw new WasmBinaryError(`the code section has ${section.end - p} bytes after its last function body`);
    const content = Buffer.concat(bodies);
    const out = Buffer.concat([bytes.subarray(0, section.start), Uint8Array.of(SectionId.Code), encodeU32(content.length), content, bytes.subarray(section.end)]);
    return { bytes: out, counts };
  }
  return { bytes, counts };
}
