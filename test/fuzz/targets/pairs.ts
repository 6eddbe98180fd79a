/**
 * Proxy-Wasm header-map pairs (src/abi/pairs.ts) and the host functions that read pairs out of guest memory
 * (proxy_set_header_map_pairs, proxy_send_local_response, proxy_http_call, proxy_grpc_call), run on a real VM
 * (plugins/wat/noop-min.wat) through the real host-function table. Oracles:
 *  - deserializePairs never throws, stays within the cpp-host caps, and what it accepts re-serializes to an
 *    input it reads back identically (idempotent); serialize -> deserialize is the identity on valid maps;
 *  - each host function's status agrees with deserializePairs on the same bytes (malformed -> BAD_ARGUMENT,
 *    out of memory -> INVALID_MEMORY_ACCESS), set then get returns the lower-cased pairs, and no handler throws
 *    (the table's wrapper would log "host function failed" and hide it as INTERNAL_FAILURE).
 */
import fc from 'fast-check';
import { MAX_PAIRS_BYTES, MAX_PAIRS_COUNT } from '../../../src/common/limits';
import { deserializePairs, serializePairs, type HeaderPairs } from '../../../src/abi/pairs';
import { buildHostImports } from '../../../src/abi/host-functions';
import { HostEmulator } from '../../../src/testing/host-emulator';
import { pluginPath } from '../../support/plugins';
import { b64, OracleFailure, type FuzzTarget } from '../harness';

export interface PairsInput {
  readonly bytes: Uint8Array;
  /** Where the host functions find the bytes: inside guest memory, straddling its end, or at a random address. */
  readonly where: 'inside' | 'straddle' | 'random';
  readonly randomPtr: number;
}

const DATA_AT = 4096; // noop-min's malloc always answers 1024; keep the input clear of what the host copies out
const STRINGS_AT = 3072;

// The VM is loaded once per process (the target is synchronous; fast-check calls check() many times).
let emulator: HostEmulator | undefined;
async function loadPairsHost(): Promise<void> {
  emulator ??= await HostEmulator.load(pluginPath('noop-min'), { configuration: '' });
}
function closePairsHost(): void {
  emulator?.close();
  emulator = undefined;
  cached = undefined;
}

function env(): { host: HostEmulator; call: (name: string, ...args: number[]) => number } {
  if (!emulator) throw new Error('loadPairsHost() first');
  const host = emulator;
  const imports = buildHostImports(host.plugin.vm, host.plugin.vm.abi);
  return {
    host,
    call: (name, ...args) => {
      const f = imports[name] as (...a: number[]) => number;
      return f(...args);
    },
  };
}
let cached: ReturnType<typeof env> | undefined;

function same(a: HeaderPairs | undefined, b: HeaderPairs | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function checkPure(bytes: Uint8Array): HeaderPairs | undefined {
  const pairs = deserializePairs(bytes);
  if (pairs === undefined) return undefined;
  if (pairs.length > MAX_PAIRS_COUNT) throw new OracleFailure(`${pairs.length} pairs accepted, cap ${MAX_PAIRS_COUNT}`);
  if (bytes.length > MAX_PAIRS_BYTES) throw new OracleFailure(`${bytes.length} bytes accepted, cap ${MAX_PAIRS_BYTES}`);
  const again = deserializePairs(serializePairs(pairs));
  if (!same(pairs, again)) throw new OracleFailure(`re-serialized pairs read back differently: ${JSON.stringify(pairs)} vs ${JSON.stringify(again)}`);
  return pairs;
}

const OK = 0;
const BAD_ARGUMENT = 2;
const INVALID_MEMORY_ACCESS = 6;
const UNIMPLEMENTED = 12;
const PARSE_FAILURE = 4;

function checkHost(input: PairsInput, pairs: HeaderPairs | undefined): void {
  cached ??= env();
  const { host, call } = cached;
  const mem = host.plugin.vm.memory;
  const size = mem.size;
  const len = input.bytes.length;
  if (len > size - DATA_AT - 64) return; // does not fit: the pure check covered it
  let ptr = input.where === 'inside' ? DATA_AT : input.where === 'straddle' ? size - Math.max(1, Math.floor(len / 2)) : input.randomPtr >>> 0;
  // A random address that lands in memory is moved above the scratch area the host functions write to.
  if (input.where === 'random' && ptr + len <= size) ptr = DATA_AT + (ptr % (size - DATA_AT - len + 1));
  const inMemory = len === 0 || ptr + len <= size;
  if (inMemory && len > 0) mem.write(ptr, input.bytes);
  const hostLogsBefore = host.hostLogs.length;
  // What a pairs argument must give: empty (len 0) is an empty map; then memory; then the format.
  const expected = len === 0 ? OK : !inMemory ? INVALID_MEMORY_ACCESS : pairs === undefined ? BAD_ARGUMENT : OK;
  const stream = host.stream();
  // The request header map exists once the request headers arrived (before that Envoy answers BAD_ARGUMENT too).
  stream.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'fuzz']]);
  try {
    const vm = host.plugin.vm;
    if (!vm.setEffectiveContext(stream.contextId)) throw new Error('no stream context');
    const set = call('proxy_set_header_map_pairs', 0, ptr, len);
    if (set !== expected) throw new OracleFailure(`proxy_set_header_map_pairs: ${set}, expected ${expected}`);
    if (set === OK) {
      const got = call('proxy_get_header_map_pairs', 0, 64, 68);
      const back = got === OK ? deserializePairs(mem.view(mem.getU32(64)!, mem.getU32(68)!)!) : undefined;
      const want = (len === 0 ? [] : pairs!).map(([k, v]) => [k.toLowerCase(), v]);
      if (!same(back, want as HeaderPairs)) throw new OracleFailure(`set then get: ${JSON.stringify(back)} vs ${JSON.stringify(want)}`);
    }
    // Strings for the other arguments live at STRINGS_AT, below the input.
    mem.write(STRINGS_AT, Buffer.from('cluster'));
    const local = call('proxy_send_local_response', 403, STRINGS_AT, 7, 0, 0, ptr, len, -1);
    if (local !== expected) throw new OracleFailure(`proxy_send_local_response: ${local}, expected ${expected}`);
    // No HTTP callout service in the emulator: a well-formed header map then meets UNIMPLEMENTED. Trailers get the
    // same bytes, so both pair arguments are read.
    const http = call('proxy_http_call', STRINGS_AT, 7, ptr, len, 0, 0, ptr, len, 1000, 72);
    const httpWant = expected === OK ? UNIMPLEMENTED : expected;
    if (http !== httpWant) throw new OracleFailure(`proxy_http_call: ${http}, expected ${httpWant}`);
    const grpc = call('proxy_grpc_call', STRINGS_AT, 7, STRINGS_AT, 7, STRINGS_AT, 7, ptr, len, 0, 0, 1000, 72);
    const grpcWant = expected === OK ? UNIMPLEMENTED : expected;
    if (grpc !== grpcWant && !(expected === OK && grpc === PARSE_FAILURE)) throw new OracleFailure(`proxy_grpc_call: ${grpc}, expected ${grpcWant}`);
    const failed = host.hostLogs.slice(hostLogsBefore).filter((r) => r['msg'] === 'host function failed');
    if (failed.length > 0) throw new OracleFailure(`a host function threw: ${JSON.stringify(failed[0])}`);
  } finally {
    stream.complete();
  }
}

function check(input: PairsInput): void {
  checkHost(input, checkPure(input.bytes));
}

// ---------- inputs ----------

const text = fc.string({ unit: 'binary', maxLength: 12 });
const map = fc.array(fc.tuple(text, text), { maxLength: 8 });

const mutation = fc.record({ at: fc.nat(), value: fc.constantFrom(0, 1, 0xff, 0x7f, 0x80) , kind: fc.constantFrom('byte', 'u32', 'truncate') });

function mutate(bytes: Buffer, ops: ReadonlyArray<{ at: number; value: number; kind: string }>): Buffer {
  let b = Buffer.from(bytes);
  for (const { at, value, kind } of ops) {
    if (b.length === 0) break;
    const i = at % b.length;
    if (kind === 'byte') b[i] = value;
    else if (kind === 'truncate') b = b.subarray(0, i);
    else if (i + 4 <= b.length) b.writeUInt32LE(value === 0 ? 0 : value === 1 ? MAX_PAIRS_COUNT + 1 : value === 0xff ? 0xffffffff : value << 8, i - (i % 4));
  }
  return b;
}

const where = fc.constantFrom<PairsInput['where']>('inside', 'inside', 'inside', 'straddle', 'random');
const bytes = fc.oneof(
  map.map((m) => serializePairs(m)),
  fc.tuple(map, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([m, ops]) => mutate(serializePairs(m), ops)),
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(fc.nat({ max: 2000 }), fc.uint8Array({ maxLength: 32 })).map(([n, rest]) => {
    const head = Buffer.alloc(4 + 8 * Math.min(n, 8));
    head.writeUInt32LE(n, 0);
    return Buffer.concat([head, rest]);
  }),
);

export const pairsTarget: FuzzTarget<PairsInput> = {
  name: 'pairs',
  arbitrary: fc.record({ bytes, where, randomPtr: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
  check,
  ciRuns: 400,
  setup: loadPairsHost,
  teardown: closePairsHost,
  encode: (i) => ({ bytes: b64.enc(i.bytes), where: i.where, randomPtr: i.randomPtr }),
  decode: (j) => {
    const o = j as { bytes: string; where: PairsInput['where']; randomPtr: number };
    return { bytes: b64.dec(o.bytes), where: o.where, randomPtr: o.randomPtr };
  },
};
