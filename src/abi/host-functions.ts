import { deflateSync, inflateSync } from 'node:zlib';
import { ALL_ABIS, type AbiVersion } from '../wasm/abi-version';
import { ioCycleLimit, MAX_LOG_MESSAGE_BYTES, timerMs } from '../common/limits';
import {
  BufferType, CalloutKind, MapType, MetricType, RedisStatus, StreamType, WasmResult, MAX_BUFFER_TYPE, MAX_MAP_TYPE,
} from './enums';
import { HttpContext, NetworkContext, RootContext, type CalloutReplyState, type Context } from './contexts';
import { deserializePairs, pairsByteSize, utf8Length, writePairs, writeUtf8, type HeaderPairs } from './pairs';
import { splitPropertyPath, type PropertyValue } from './properties';
import type { PluginVm } from './plugin-vm';
import type { RedisReply } from '../services/redis';
import type { GrpcCalloutHandlers, GrpcStreamCall } from '../services/grpc-callout';
import type { GuestExportName } from './guest-exports';
import { hostCallRecorder } from './host-call-recorder';
import { decodeDeclarePropertyArgs, decodeInjectArgs, decodeSetEnvoyFilterStateArgs } from './foreign-args';

/**
 * Every host function the sidecar offers, declared once (cpp-host exports.h FOR_ALL_HOST_FUNCTIONS, plus the
 * Higress and requirements-note Redis imports). buildHostImports(), docs/abi.md (scripts/gen-abi-docs.mjs) and
 * the conformance test all read this table. Handlers get the VM and raw i32/i64 arguments; they return a
 * proxy_status_t and never throw into V8 (the wrapper turns an exception into INTERNAL_FAILURE).
 */

export type WasmType = 'i32' | 'i64';
type Arg = number & bigint; // i32 args are numbers, i64 args BigInts; handlers narrow by position
export type HostHandler = (vm: PluginVm, ...args: Arg[]) => number | void;

export interface HostFunction {
  readonly name: string;
  readonly params: readonly WasmType[];
  readonly result: 'i32' | 'none';
  readonly abis: readonly AbiVersion[];
  /** Where it comes from, for the docs. */
  readonly origin: 'spec' | 'spec-0.1.0' | 'higress' | 'note-variant' | 'cpp-host';
  readonly handler: HostHandler;
}

const V01: readonly AbiVersion[] = ['0.1.0'];
const V02_PLUS: readonly AbiVersion[] = ['0.2.0', '0.2.1', '0.2.100'];
const V021_PLUS: readonly AbiVersion[] = ['0.2.1', '0.2.100'];

const i = 'i32' as const;
const l = 'i64' as const;
const p = (n: number): WasmType[] => Array<WasmType>(n).fill(i);

function hostFn(
  name: string,
  params: readonly WasmType[],
  abis: readonly AbiVersion[],
  origin: HostFunction['origin'],
  handler: HostHandler,
  result: 'i32' | 'none' = 'i32',
): HostFunction {
  return { name, params, abis, origin, handler, result };
}

// ---------- helpers ----------


function ctxOf(vm: PluginVm): Context | undefined {
  return vm.activeContext();
}

function httpCtx(vm: PluginVm): HttpContext | undefined {
  const ctx = ctxOf(vm);
  return ctx instanceof HttpContext ? ctx : undefined;
}

function rootOf(vm: PluginVm): RootContext | undefined {
  return ctxOf(vm)?.root;
}

function str(vm: PluginVm, ptr: number, len: number): string | undefined {
  return vm.memory.string(ptr, len);
}

const EMPTY = Buffer.alloc(0);

/** A name a plugin passes (header name, property path), decoded once (see NameCache). */
interface Name {
  readonly bytes: Uint8Array;
  readonly text: string;
  /** Lower-cased, as header maps hold names. */
  readonly lower: string;
  /** Property path segments and their dotted form, split on first use. */
  parts: readonly string[] | undefined;
  dotted: string | undefined;
}

const MAX_CACHED_NAME = 256;
const MAX_CACHED_NAMES = 2048;

/**
 * Names plugins pass again and again (the Higress SDK reads nine request headers and two properties per request),
 * decoded once: keyed by a hash of their bytes and checked byte for byte, so the same name at a new address (Go
 * builds every argument afresh) still hits. A name's text does not depend on the VM, so one cache serves the
 * process; bounded (cleared when full), one entry per hash (a colliding name replaces it).
 */
class NameCache {
  private readonly entries = new Map<number, Name>();

  /** The name in `memory[at, at + n)` (the caller checked the bounds). */
  lookup(memory: Uint8Array, at: number, n: number): Name {
    if (n > MAX_CACHED_NAME) return makeName(memory.slice(at, at + n));
    let h = 0x811c9dc5 ^ n;
    for (let j = 0; j < n; j++) h = Math.imul(h ^ memory[at + j]!, 0x01000193);
    const hit = this.entries.get(h);
    if (hit && hit.bytes.length === n) {
      const b = hit.bytes;
      let j = 0;
      while (j < n && b[j] === memory[at + j]) j++;
      if (j === n) return hit;
    }
    if (this.entries.size >= MAX_CACHED_NAMES) this.entries.clear();
    const name = makeName(memory.slice(at, at + n));
    this.entries.set(h, name);
    return name;
  }
}

function makeName(bytes: Uint8Array): Name {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  return { bytes, text, lower: text.toLowerCase(), parts: undefined, dotted: undefined };
}

const names = new NameCache();
const EMPTY_NAME: Name = makeName(new Uint8Array(0));

/** The name at (ptr, len), or undefined if out of bounds; (x, 0) is the empty name. */
function nameAt(vm: PluginVm, ptr: number, len: number): Name | undefined {
  const at = ptr >>> 0;
  const n = len >>> 0;
  if (n === 0) return EMPTY_NAME;
  const memory = vm.memory.bytesAt(at, n);
  return memory === undefined ? undefined : names.lookup(memory, at, n);
}

function pathParts(name: Name): readonly string[] {
  return (name.parts ??= splitPropertyPath(name.text));
}

function dottedPath(name: Name): string {
  return (name.dotted ??= pathParts(name).join('.'));
}

function getBuffer(vm: PluginVm, type: number): Buffer | undefined {
  const ctx = ctxOf(vm);
  if (!ctx) return undefined;
  const root = ctx.root;
  switch (type) {
    case BufferType.HttpRequestBody:
      return ctx instanceof HttpContext ? ctx.stream.requestBody : undefined;
    case BufferType.HttpResponseBody:
      return ctx instanceof HttpContext ? ctx.stream.responseBody : undefined;
    case BufferType.DownstreamData:
      return ctx instanceof NetworkContext ? ctx.connection.downstreamData : undefined;
    case BufferType.UpstreamData:
      return ctx instanceof NetworkContext ? ctx.connection.upstreamData : undefined;
    case BufferType.HttpCallResponseBody:
      return root.reply.httpResponse?.body;
    case BufferType.GrpcReceiveBuffer:
      return root.reply.grpcMessage;
    case BufferType.VmConfiguration:
      return vm.vmConfiguration;
    case BufferType.PluginConfiguration:
      return root.plugin.configuration;
    case BufferType.CallData:
      return root.reply.foreignArgs;
    case BufferType.RedisCallResponse:
      // Resolved through the root context, so it stays readable after the SDK switched to the stream (Envoy).
      return root.reply.redisReply;
    default:
      return undefined; // gRPC messages: not in this callback
  }
}

function getMap(vm: PluginVm, type: number): HeaderPairs | undefined {
  const ctx = ctxOf(vm);
  if (!ctx) return undefined;
  if (ctx instanceof HttpContext) {
    const s = ctx.stream;
    switch (type) {
      case MapType.HttpRequestHeaders: return s.requestHeaders;
      case MapType.HttpRequestTrailers: return s.requestTrailers;
      case MapType.HttpResponseHeaders: return s.responseHeaders;
      case MapType.HttpResponseTrailers: return s.responseTrailers;
    }
  }
  const reply = ctx.root.reply;
  switch (type) {
    case MapType.HttpCallResponseHeaders: return reply.httpResponse?.headers;
    case MapType.HttpCallResponseTrailers: return reply.httpResponse?.trailers;
    case MapType.GrpcReceiveInitialMetadata: return reply.grpcInitialMetadata;
    case MapType.GrpcReceiveTrailingMetadata: return reply.grpcTrailingMetadata;
    default: return undefined;
  }
}

function mapOrStatus(vm: PluginVm, type: number): HeaderPairs | WasmResult {
  if (type < 0 || type > MAX_MAP_TYPE) return WasmResult.BadArgument;
  return getMap(vm, type) ?? WasmResult.BadArgument;
}

function lower(s: string): string {
  return s.toLowerCase();
}

/** A request-header change clears the route cache in Envoy's Wasm context (unless the plugin opted out). */
function headersModified(vm: PluginVm, type: number): WasmResult {
  if (type === MapType.HttpRequestHeaders) httpCtx(vm)?.stream.host.requestHeadersModified?.();
  return WasmResult.Ok;
}

function parsePairsAt(vm: PluginVm, ptr: number, len: number): HeaderPairs | WasmResult {
  if ((len >>> 0) === 0) return [];
  const bytes = vm.memory.view(ptr, len);
  if (!bytes) return WasmResult.InvalidMemoryAccess;
  return deserializePairs(bytes) ?? WasmResult.BadArgument;
}

function writeU32(vm: PluginVm, ptr: number, value: number): WasmResult {
  return vm.memory.setU32(ptr, value) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
}

function copyOut(vm: PluginVm, bytes: Uint8Array, ptrPtr: number, sizePtr: number): WasmResult {
  return vm.copyOut(bytes, ptrPtr, sizePtr) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
}

/**
 * The guest memory's bytes for a result the guest's allocator placed at `ptr` (0: it failed), read after allocating
 * (the allocator may have grown the memory); written at `ptr` itself, with no view per result (GuestMemory.bytesAt).
 */
function allocatedBytes(vm: PluginVm, ptr: number, size: number): Uint8Array | undefined {
  return ptr === 0 ? undefined : vm.memory.bytesAt(ptr, size);
}

/** Writes (ptr, size) of a filled allocation to the out-pointers. */
function returnAt(vm: PluginVm, ptr: number, size: number, ptrPtr: number, sizePtr: number): WasmResult {
  return vm.memory.setU32(ptrPtr, ptr) && vm.memory.setU32(sizePtr, size) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
}

/** A string written as UTF-8 straight into guest memory; empty is (0, 0) without calling the allocator, as copyOut. */
function copyStringOut(vm: PluginVm, s: string, ptrPtr: number, sizePtr: number): WasmResult {
  const n = utf8Length(s);
  if (n === 0) return copyOut(vm, EMPTY, ptrPtr, sizePtr);
  const ptr = vm.allocate(n);
  const memory = allocatedBytes(vm, ptr, n);
  if (memory === undefined) return WasmResult.InvalidMemoryAccess;
  writeUtf8(memory, ptr, s, n);
  return returnAt(vm, ptr, n, ptrPtr, sizePtr);
}

/** Pairs serialized straight into guest memory (no Buffer per map, none per key or value). */
function copyPairsOut(vm: PluginVm, pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>, ptrPtr: number, sizePtr: number): WasmResult {
  const size = pairsByteSize(pairs);
  const ptr = vm.allocate(size);
  const memory = allocatedBytes(vm, ptr, size);
  if (memory === undefined) return WasmResult.InvalidMemoryAccess;
  writePairs(pairs, memory, ptr);
  return returnAt(vm, ptr, size, ptrPtr, sizePtr);
}

/**
 * A property value as Envoy serializes it (context.cc serializeValue; properties.ts serializeProperty), written
 * straight into guest memory: strings raw, integers 8 bytes LE, booleans one byte, maps as pairs.
 */
function copyPropertyOut(vm: PluginVm, value: PropertyValue, ptrPtr: number, sizePtr: number): WasmResult {
  if (typeof value === 'string') return copyStringOut(vm, value, ptrPtr, sizePtr);
  if (value instanceof Uint8Array) return copyOut(vm, value, ptrPtr, sizePtr);
  if (typeof value === 'boolean') {
    const ptr = vm.allocate(1);
    const memory = allocatedBytes(vm, ptr, 1);
    if (memory === undefined) return WasmResult.InvalidMemoryAccess;
    memory[ptr] = value ? 1 : 0;
    return returnAt(vm, ptr, 1, ptrPtr, sizePtr);
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    const ptr = vm.allocate(8);
    const memory = allocatedBytes(vm, ptr, 8);
    if (memory === undefined) return WasmResult.InvalidMemoryAccess;
    const dv = new DataView(memory.buffer, ptr, 8);
    if (typeof value === 'number' && !Number.isInteger(value)) dv.setFloat64(0, value, true);
    else dv.setBigInt64(0, BigInt(value), true);
    return returnAt(vm, ptr, 8, ptrPtr, sizePtr);
  }
  return copyPairsOut(vm, value, ptrPtr, sizePtr);
}

// ---------- logging, time, timers ----------

function log(vm: PluginVm, level: number, ptr: number, len: number): WasmResult {
  if (level < 0 || level > 5) return WasmResult.BadArgument;
  // Below the current level the message is never decoded: only its bounds are checked, as cpp-host reads them.
  if (level < vm.services.logLevel()) return vm.memory.bytesAt(ptr, len) === undefined ? WasmResult.InvalidMemoryAccess : WasmResult.Ok;
  if (vm.memory.bytesAt(ptr, len) === undefined) return WasmResult.InvalidMemoryAccess;
  // Bounded: a 1 GiB message would become a string and a JSON-escaped log line past what the heap holds.
  const size = len >>> 0;
  const shown = Math.min(size, MAX_LOG_MESSAGE_BYTES);
  const message = str(vm, ptr, shown)!;
  vm.pluginLog(level, shown < size ? `${message}... [truncated: ${size} bytes]` : message);
  return WasmResult.Ok;
}

function setTickPeriod(vm: PluginVm, periodMs: number): WasmResult {
  const root = rootOf(vm);
  if (!root) return WasmResult.BadArgument;
  if (root.tickTimer) clearInterval(root.tickTimer);
  root.tickTimer = undefined;
  root.tickPeriodMs = periodMs >>> 0;
  if (root.tickPeriodMs > 0) {
    root.tickTimer = setInterval(() => {
      if (vm.contexts.get(root.id) === root) vm.callGuest(root, 'proxy_on_tick', root.id);
    }, timerMs(root.tickPeriodMs)); // a u32 period past Node's timer range would otherwise tick every 1 ms
    root.tickTimer.unref();
  }
  return WasmResult.Ok;
}

// ---------- buffers ----------

function getBufferBytes(vm: PluginVm, type: number, start: number, max: number, ptrPtr: number, sizePtr: number): WasmResult {
  if (type < 0 || type > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
  start >>>= 0;
  max >>>= 0;
  if (start + max > 0xffffffff) return WasmResult.BadArgument;
  const buffer = getBuffer(vm, type);
  if (buffer === undefined) return WasmResult.NotFound;
  const end = Math.min(buffer.length, start + max);
  const slice = start >= end ? EMPTY : buffer.subarray(start, end);
  return copyOut(vm, slice, ptrPtr, sizePtr);
}

function getBufferStatus(vm: PluginVm, type: number, sizePtr: number, flagsPtr: number): WasmResult {
  if (type < 0 || type > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
  const buffer = getBuffer(vm, type);
  if (buffer === undefined) return WasmResult.NotFound;
  if (!vm.memory.setU32(sizePtr, buffer.length) || !vm.memory.setU32(flagsPtr, 0)) return WasmResult.InvalidMemoryAccess;
  return WasmResult.Ok;
}

/** Replaces `size` bytes at `start`: (0, 0) prepends, start >= length appends, (0, >= length) replaces all. */
function setBufferBytes(vm: PluginVm, type: number, start: number, size: number, ptr: number, len: number): WasmResult {
  if (type < 0 || type > MAX_BUFFER_TYPE) return WasmResult.BadArgument;
  const value = (len >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(ptr, len);
  if (value === undefined) return WasmResult.InvalidMemoryAccess;
  const target = writableBuffer(ctxOf(vm), type);
  if (!target) return getBuffer(vm, type) === undefined ? WasmResult.NotFound : WasmResult.BadArgument; // read-only buffers
  const current = target.get();
  if (current === undefined) return WasmResult.NotFound;
  start >>>= 0;
  size >>>= 0;
  let next: Buffer;
  if (start >= current.length) next = Buffer.concat([current, value]);
  else next = Buffer.concat([current.subarray(0, start), value, current.subarray(Math.min(current.length, start + size))]);
  target.set(next);
  return WasmResult.Ok;
}

/** The bodies of an HTTP stream and the data of a TCP connection are writable; every other buffer is read-only. */
function writableBuffer(ctx: Context | undefined, type: number): { get(): Buffer | undefined; set(b: Buffer): void } | undefined {
  if (ctx instanceof HttpContext) {
    const s = ctx.stream;
    if (type === BufferType.HttpRequestBody) return { get: () => s.requestBody, set: (b) => (s.requestBody = b) };
    if (type === BufferType.HttpResponseBody) return { get: () => s.responseBody, set: (b) => (s.responseBody = b) };
  } else if (ctx instanceof NetworkContext) {
    const c = ctx.connection;
    if (type === BufferType.DownstreamData) return { get: () => c.downstreamData, set: (b) => (c.downstreamData = b) };
    if (type === BufferType.UpstreamData) return { get: () => c.upstreamData, set: (b) => (c.upstreamData = b) };
  }
  return undefined;
}

// ---------- header maps ----------

function getHeaderMapValue(vm: PluginVm, type: number, kPtr: number, kLen: number, ptrPtr: number, sizePtr: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  const key = nameAt(vm, kPtr, kLen);
  if (key === undefined) return WasmResult.InvalidMemoryAccess;
  const k = key.lower;
  let value: string | undefined;
  for (let j = 0; j < map.length; j++) {
    const pair = map[j]!;
    if (pair[0] === k) value = value === undefined ? pair[1] : `${value},${pair[1]}`;
  }
  if (value === undefined) {
    // 0.1.0 returned OK with an empty value for a missing key.
    if (vm.abi === '0.1.0') return copyOut(vm, EMPTY, ptrPtr, sizePtr);
    return WasmResult.NotFound;
  }
  return copyStringOut(vm, value, ptrPtr, sizePtr);
}

function addHeaderMapValue(vm: PluginVm, type: number, kPtr: number, kLen: number, vPtr: number, vLen: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  const key = nameAt(vm, kPtr, kLen);
  const value = str(vm, vPtr, vLen);
  if (key === undefined || value === undefined) return WasmResult.InvalidMemoryAccess;
  map.push([key.lower, value]);
  return headersModified(vm, type);
}

function replaceHeaderMapValue(vm: PluginVm, type: number, kPtr: number, kLen: number, vPtr: number, vLen: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  const key = nameAt(vm, kPtr, kLen);
  const value = str(vm, vPtr, vLen);
  if (key === undefined || value === undefined) return WasmResult.InvalidMemoryAccess;
  const k = key.lower;
  const first = map.findIndex(([name]) => name === k);
  if (first === -1) {
    map.push([k, value]);
    return headersModified(vm, type);
  }
  map[first] = [k, value];
  for (let j = map.length - 1; j > first; j--) if (map[j]![0] === k) map.splice(j, 1);
  return headersModified(vm, type);
}

function removeHeaderMapValue(vm: PluginVm, type: number, kPtr: number, kLen: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  const key = nameAt(vm, kPtr, kLen);
  if (key === undefined) return WasmResult.InvalidMemoryAccess;
  const k = key.lower;
  for (let j = map.length - 1; j >= 0; j--) if (map[j]![0] === k) map.splice(j, 1);
  return headersModified(vm, type);
}

function getHeaderMapPairs(vm: PluginVm, type: number, ptrPtr: number, sizePtr: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  return copyPairsOut(vm, map, ptrPtr, sizePtr);
}

/** Replaces the whole map (the Java host's merge is a known bug: removed headers must not survive). */
function setHeaderMapPairs(vm: PluginVm, type: number, ptr: number, len: number): WasmResult {
  const pairs = parsePairsAt(vm, ptr, len); // memory first, as cpp-host
  if (typeof pairs === 'number') return pairs;
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  map.splice(0, map.length, ...pairs.map(([k, v]): [string, string] => [lower(k), v]));
  return headersModified(vm, type);
}

/** Envoy's meaning: the sum of key and value bytes (map->byteSize()). */
function getHeaderMapSize(vm: PluginVm, type: number, sizePtr: number): WasmResult {
  const map = mapOrStatus(vm, type);
  if (typeof map === 'number') return map;
  let size = 0;
  for (let j = 0; j < map.length; j++) size += utf8Length(map[j]![0]) + utf8Length(map[j]![1]);
  return writeU32(vm, sizePtr, size);
}

// ---------- stream control ----------

function streamAction(vm: PluginVm, type: number, action: 'continueStream' | 'closeStream'): WasmResult {
  if (type < 0 || type > StreamType.Upstream) return WasmResult.BadArgument;
  const ctx = ctxOf(vm);
  const l4 = type === StreamType.Downstream || type === StreamType.Upstream;
  let host: { continueStream(t: StreamType): void; closeStream(t: StreamType): void };
  if (ctx instanceof NetworkContext) {
    if (!l4) return WasmResult.BadArgument;
    host = ctx.connection.host;
  } else if (ctx instanceof HttpContext) {
    if (l4) return WasmResult.Unimplemented; // Envoy's HTTP Wasm filter has no downstream/upstream stream to act on
    host = ctx.stream.host;
  } else return WasmResult.NotFound;
  vm.defer(() => host[action](type));
  return WasmResult.Ok;
}

function sendLocalResponse(
  vm: PluginVm, status: number, dPtr: number, dLen: number, bPtr: number, bLen: number, hPtr: number, hLen: number, grpcStatus: number,
): WasmResult {
  const details = str(vm, dPtr, dLen);
  const body = (bLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(bPtr, bLen);
  if (details === undefined || body === undefined) return WasmResult.InvalidMemoryAccess;
  const headers = parsePairsAt(vm, hPtr, hLen);
  if (typeof headers === 'number') return headers;
  const ctx = httpCtx(vm);
  if (!ctx) return WasmResult.NotFound;
  if (ctx.stream.localResponse) return WasmResult.BadArgument; // a second local reply (Envoy)
  const response = { statusCode: status >>> 0, details, body, headers: headers.map(([k, v]): [string, string] => [lower(k), v]), grpcStatus };
  ctx.stream.localResponse = response;
  ctx.stopNextIteration = true;
  const host = ctx.stream.host;
  vm.defer(() => host.sendLocalResponse(response));
  return WasmResult.Ok;
}

function getStatus(vm: PluginVm, codePtr: number, msgPtrPtr: number, msgLenPtr: number): WasmResult {
  const status = rootOf(vm)?.reply.status;
  if (!status) return WasmResult.NotFound;
  if (!vm.memory.setU32(codePtr, status.code)) return WasmResult.InvalidMemoryAccess;
  return copyOut(vm, Buffer.from(status.message, 'utf8'), msgPtrPtr, msgLenPtr);
}

// ---------- properties ----------

function getProperty(vm: PluginVm, pPtr: number, pLen: number, ptrPtr: number, sizePtr: number): WasmResult {
  const path = nameAt(vm, pPtr, pLen);
  if (path === undefined) return WasmResult.InvalidMemoryAccess;
  const ctx = ctxOf(vm);
  if (!ctx) return WasmResult.NotFound;
  const stream = ctx instanceof HttpContext ? ctx.stream : ctx instanceof NetworkContext ? ctx.connection : undefined;
  const set = stream !== undefined && stream.properties.size > 0 ? stream.properties.get(path.text) : undefined;
  if (set) return copyOut(vm, set, ptrPtr, sizePtr);
  const plugin = ctx.root.plugin;
  let value: PropertyValue | undefined;
  switch (dottedPath(path)) {
    case 'plugin_name': value = plugin.name; break;
    case 'plugin_root_id': value = plugin.rootId; break;
    case 'plugin_vm_id': value = vm.vmId; break;
    case 'plugin_vm_memory': value = BigInt(vm.memory.size); break;
    default:
      value = stream?.host.property(pathParts(path));
  }
  if (value === undefined) return WasmResult.NotFound;
  return copyPropertyOut(vm, value, ptrPtr, sizePtr);
}

/** Stored per stream and read back later (Envoy filter state `wasm.<path>`); NotFound outside a stream. */
function setProperty(vm: PluginVm, pPtr: number, pLen: number, vPtr: number, vLen: number): WasmResult {
  const path = nameAt(vm, pPtr, pLen);
  const value = (vLen >>> 0) === 0 ? EMPTY : vm.memory.copy(vPtr, vLen);
  if (path === undefined || value === undefined) return WasmResult.InvalidMemoryAccess;
  const ctx = httpCtx(vm);
  if (!ctx) return WasmResult.NotFound;
  const raw = path.text;
  // Higress hands `trace_span_tag.<tag>` to the tracer as a span tag instead of storing it; no tracer here.
  if (raw.startsWith('trace_span_tag.')) return WasmResult.Ok;
  // A property declared read-only (declare_property) takes one value per stream (Envoy CelState::setValue).
  if (declaredProperties.get(ctx.root)?.get(raw)?.readonly && ctx.stream.properties.has(raw)) return WasmResult.BadArgument;
  ctx.stream.properties.set(raw, value);
  ctx.stream.host.propertyWritten?.(raw, value);
  return WasmResult.Ok;
}

// ---------- shared data and queues ----------

function getSharedData(vm: PluginVm, kPtr: number, kLen: number, ptrPtr: number, sizePtr: number, casPtr: number): WasmResult {
  const key = str(vm, kPtr, kLen);
  if (key === undefined) return WasmResult.InvalidMemoryAccess;
  const entry = vm.services.sharedData.get(vm.vmId, key);
  if (!entry) return WasmResult.NotFound;
  if (!vm.memory.setU32(casPtr, entry.cas)) return WasmResult.InvalidMemoryAccess;
  return copyOut(vm, entry.value, ptrPtr, sizePtr);
}

function setSharedData(vm: PluginVm, kPtr: number, kLen: number, vPtr: number, vLen: number, cas: number): WasmResult {
  const key = str(vm, kPtr, kLen);
  const value = (vLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(vPtr, vLen);
  if (key === undefined || value === undefined) return WasmResult.InvalidMemoryAccess;
  return vm.services.sharedData.set(vm.vmId, key, value, cas >>> 0);
}

function registerSharedQueue(vm: PluginVm, nPtr: number, nLen: number, idPtr: number): WasmResult {
  const name = str(vm, nPtr, nLen);
  if (name === undefined) return WasmResult.InvalidMemoryAccess;
  const root = rootOf(vm);
  if (!root) return WasmResult.BadArgument;
  if (!vm.memory.setU32(idPtr, 0)) return WasmResult.InvalidMemoryAccess;
  const { id, registration } = vm.services.sharedQueues.register(vm.vmId, name, (queueId) => {
    if (vm.contexts.get(root.id) === root) vm.callGuest(root, 'proxy_on_queue_ready', root.id, queueId);
  });
  root.queueRegistrations.push(registration);
  return writeU32(vm, idPtr, id);
}

function resolveSharedQueue(vm: PluginVm, vPtr: number, vLen: number, nPtr: number, nLen: number, idPtr: number): WasmResult {
  const vmId = str(vm, vPtr, vLen);
  const name = str(vm, nPtr, nLen);
  if (vmId === undefined || name === undefined) return WasmResult.InvalidMemoryAccess;
  const id = vm.services.sharedQueues.resolve(vmId === '' ? vm.vmId : vmId, name);
  if (id === undefined) return WasmResult.NotFound;
  return writeU32(vm, idPtr, id);
}

function enqueueSharedQueue(vm: PluginVm, id: number, vPtr: number, vLen: number): WasmResult {
  const value = (vLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(vPtr, vLen);
  if (value === undefined) return WasmResult.InvalidMemoryAccess;
  return vm.services.sharedQueues.enqueue(id >>> 0, value) ? WasmResult.Ok : WasmResult.NotFound;
}

function dequeueSharedQueue(vm: PluginVm, id: number, ptrPtr: number, sizePtr: number): WasmResult {
  const value = vm.services.sharedQueues.dequeue(id >>> 0);
  if (value === undefined) return WasmResult.NotFound;
  if (value === null) return WasmResult.Empty;
  return copyOut(vm, value, ptrPtr, sizePtr);
}

// ---------- metrics ----------

function defineMetric(vm: PluginVm, type: number, nPtr: number, nLen: number, idPtr: number): WasmResult {
  if (type < MetricType.Counter || type > MetricType.Histogram) return WasmResult.BadArgument;
  const name = str(vm, nPtr, nLen);
  if (name === undefined) return WasmResult.InvalidMemoryAccess;
  if (!vm.memory.setU32(idPtr, 0)) return WasmResult.InvalidMemoryAccess;
  return writeU32(vm, idPtr, vm.services.metrics.define(type, name).id);
}

function recordMetric(vm: PluginVm, id: number, value: bigint): WasmResult {
  const m = vm.services.metrics.get(id >>> 0);
  if (!m) return WasmResult.NotFound;
  if (m.type === MetricType.Histogram) {
    m.count++;
    m.sum += value;
    m.samples.push(value);
    if (m.samples.length > 1024) m.samples.shift();
  } else if (m.type === MetricType.Counter) {
    if (value > 0n) m.value += value; // Envoy adds a positive value to a counter
  } else {
    m.value = value;
  }
  return WasmResult.Ok;
}

function incrementMetric(vm: PluginVm, id: number, delta: bigint): WasmResult {
  const m = vm.services.metrics.get(id >>> 0);
  if (!m) return WasmResult.NotFound;
  if (m.type === MetricType.Histogram) return WasmResult.BadArgument;
  if (m.type === MetricType.Counter && delta < 0n) return WasmResult.BadArgument;
  m.value += delta;
  return WasmResult.Ok;
}

function getMetric(vm: PluginVm, id: number, valuePtr: number): WasmResult {
  const m = vm.services.metrics.get(id >>> 0);
  if (!m) return WasmResult.NotFound;
  if (m.type === MetricType.Histogram) return WasmResult.BadArgument;
  return vm.memory.setU64(valuePtr, m.value) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
}

// ---------- effective context, done, foreign functions ----------

function setEffectiveContext(vm: PluginVm, id: number): WasmResult {
  return vm.setEffectiveContext(id >>> 0) ? WasmResult.Ok : WasmResult.BadArgument;
}

/** The plugin finished what proxy_on_done deferred: delete the context after the current call. */
function done(vm: PluginVm): WasmResult {
  const ctx = ctxOf(vm);
  if (!ctx || !ctx.pendingDone) return WasmResult.NotFound;
  ctx.pendingDone = false;
  vm.defer(() => {
    if (ctx instanceof RootContext) vm.cancelCallouts(ctx);
    vm.callGuest(ctx, 'proxy_on_delete', ctx.id);
    vm.deleteContext(ctx);
  });
  return WasmResult.Ok;
}

/** A declared property (declare_property): Envoy's CelStatePrototype, reduced to what changes behaviour here. */
interface PropertyPrototype {
  readonly readonly: boolean;
}

/** Per root context, as Envoy keeps state_prototypes_ on the root (a declaration is never replaced). */
const declaredProperties = new WeakMap<RootContext, Map<string, PropertyPrototype>>();

type ForeignOutcome = WasmResult | Uint8Array;

/**
 * Envoy's and Higress's foreign functions (foreign.cc), by name. A result is the bytes the plugin receives
 * (status OK); a bare status is returned as is. Names Envoy does not register here (CEL expr_*, which needs
 * Envoy's CEL build, sign/verify_signature) answer NOT_FOUND, as cpp-host does for an unknown function.
 */
function foreignFunction(vm: PluginVm, name: string, args: Uint8Array): ForeignOutcome {
  switch (name) {
    case 'get_log_level': {
      const out = Buffer.alloc(4);
      out.writeUInt32LE(vm.services.logLevel());
      return out;
    }
    case 'compress':
      // zlib compress(): the zlib format at the default level.
      return deflateSync(args);
    case 'uncompress':
      try {
        return inflateSync(args);
      } catch {
        return WasmResult.SerializationFailure;
      }
    case 'declare_property': {
      const a = decodeDeclarePropertyArgs(args);
      const root = rootOf(vm);
      if (!a || !root) return WasmResult.BadArgument;
      let declared = declaredProperties.get(root);
      if (!declared) declaredProperties.set(root, (declared = new Map()));
      if (declared.has(a.name)) return WasmResult.BadArgument;
      declared.set(a.name, { readonly: a.readonly });
      return WasmResult.Ok;
    }
    case 'set_envoy_filter_state':
      // Envoy looks the path up among registered filter-state object factories; this host registers none.
      return decodeSetEnvoyFilterStateArgs(args) ? WasmResult.NotFound : WasmResult.BadArgument;
    case 'clear_route_cache':
      httpCtx(vm)?.stream.host.clearRouteCache?.();
      return WasmResult.Ok;
    case 'set_global_max_requests_per_io_cycle': {
      // wasm-go sends the limit as a little-endian uint64.
      if (args.length !== 8) return WasmResult.BadArgument;
      const max = Buffer.from(args.buffer, args.byteOffset, 8).readBigUInt64LE();
      ioCycleLimit.set(max > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(max));
      return WasmResult.Ok;
    }
    case 'inject_encoded_data_to_filter_chain':
    case 'inject_encoded_data_to_filter_chain_on_header': {
      const a = decodeInjectArgs(args);
      if (!a) return WasmResult.BadArgument;
      return injectEncoded(vm, Buffer.from(a.body, 'utf8'), a.endstream, name.endsWith('_on_header'));
    }
    default:
      return WasmResult.NotFound;
  }
}

/**
 * Higress injectEncodedDataToFilterChain. Envoy answers OK whenever the context has encoder callbacks (any HTTP
 * stream), so this does too; before a response reached the filter there are no headers to release (Envoy would
 * misbehave), so the data is dropped with a warning. Outside an HTTP stream: NOT_FOUND.
 */
function injectEncoded(vm: PluginVm, body: Buffer, endOfStream: boolean, onHeader: boolean): WasmResult {
  const ctx = httpCtx(vm);
  const host = ctx?.stream.host;
  if (!ctx || !host?.injectEncodedData) return WasmResult.NotFound;
  if (!host.injectEncodedData(body, endOfStream, onHeader)) {
    vm.logger.warn({ plugin: ctx.root.label, bytes: body.length }, 'inject_encoded_data_to_filter_chain before the response reached the filter; dropped');
  }
  return WasmResult.Ok;
}

function injectEncodedDataToFilterChain(vm: PluginVm, bPtr: number, bLen: number, endOfStream: number): WasmResult {
  const body = (bLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(bPtr, bLen);
  if (body === undefined) return WasmResult.InvalidMemoryAccess;
  return injectEncoded(vm, body, endOfStream !== 0, false);
}

function callForeignFunction(vm: PluginVm, nPtr: number, nLen: number, aPtr: number, aLen: number, ptrPtr: number, sizePtr: number): WasmResult {
  const name = str(vm, nPtr, nLen);
  const args = (aLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(aPtr, aLen);
  if (name === undefined || args === undefined) return WasmResult.InvalidMemoryAccess;
  const outcome = foreignFunction(vm, name, args);
  if (typeof outcome === 'number') {
    if (outcome !== WasmResult.Ok) return outcome;
    return copyOut(vm, Buffer.alloc(0), ptrPtr, sizePtr);
  }
  return copyOut(vm, outcome, ptrPtr, sizePtr);
}

// ---------- HTTP callouts ----------

function httpCall(
  vm: PluginVm, uPtr: number, uLen: number, hPtr: number, hLen: number, bPtr: number, bLen: number, tPtr: number, tLen: number,
  timeoutMs: number, tokenPtr: number,
): WasmResult {
  const cluster = str(vm, uPtr, uLen);
  const body = (bLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(bPtr, bLen);
  if (cluster === undefined || body === undefined) return WasmResult.InvalidMemoryAccess;
  const headers = parsePairsAt(vm, hPtr, hLen);
  if (typeof headers === 'number') return headers;
  const trailers = parsePairsAt(vm, tPtr, tLen);
  if (typeof trailers === 'number') return trailers;
  if (!vm.memory.setU32(tokenPtr, 0)) return WasmResult.InvalidMemoryAccess;
  const service = vm.services.httpCallout;
  if (!service) return WasmResult.Unimplemented;
  for (const required of [':method', ':path', ':authority']) {
    if (!headers.some(([k]) => lower(k) === required)) return WasmResult.BadArgument;
  }
  const root = rootOf(vm);
  if (!root) return WasmResult.BadArgument;
  const token = vm.nextCalloutToken(CalloutKind.HttpCall);
  const outcome = service.call({ cluster, headers, body, trailers, timeoutMs: timeoutMs >>> 0 }, (response) => {
    if (!root.pendingHttp.delete(token)) return;
    vm.whenIdle(() => {
      if (vm.contexts.get(root.id) !== root) return;
      // A callout that failed without a response (a reset) is Envoy's onHttpCallFailure: no response maps or
      // body to read, and proxy_get_status says BROKEN_CONNECTION "reset".
      root.reply = response.headers.length === 0 ? { status: { code: WasmResult.BrokenConnection, message: 'reset' } } : { httpResponse: response };
      try {
        vm.callGuest(root, 'proxy_on_http_call_response', root.id, token, response.headers.length, response.body.length, response.trailers.length);
      } finally {
        root.reply = {};
      }
    });
  });
  if (outcome.status === 'unknown_cluster' || outcome.status === 'bad_argument') return WasmResult.BadArgument;
  if (outcome.status === 'internal_failure') return WasmResult.InternalFailure;
  root.pendingHttp.set(token, { cancel: outcome.cancel });
  return writeU32(vm, tokenPtr, token);
}

// ---------- gRPC callouts ----------

interface GrpcCallArgs {
  readonly cluster: string;
  readonly service: string;
  readonly method: string;
  readonly metadata: HeaderPairs;
}

function readGrpcArgs(vm: PluginVm, a: readonly number[]): GrpcCallArgs | WasmResult {
  const [uPtr, uLen, sPtr, sLen, mPtr, mLen, mdPtr, mdLen] = a as [number, number, number, number, number, number, number, number];
  const cluster = str(vm, uPtr, uLen);
  const service = str(vm, sPtr, sLen);
  const method = str(vm, mPtr, mLen);
  if (cluster === undefined || service === undefined || method === undefined) return WasmResult.InvalidMemoryAccess;
  const metadata = parsePairsAt(vm, mdPtr, mdLen);
  if (typeof metadata === 'number') return metadata;
  return { cluster, service, method, metadata };
}

/** Delivers one gRPC event to the root that owns `token`, with the matching reply state readable. */
function deliverGrpc(vm: PluginVm, root: RootContext, token: number, reply: RootContext['reply'], callback: GuestExportName, arg: number): void {
  vm.whenIdle(() => {
    if (vm.contexts.get(root.id) !== root || vm.failed) return;
    root.reply = reply;
    try {
      vm.callGuest(root, callback, root.id, token, arg);
    } finally {
      root.reply = {};
    }
  });
}

function grpcHandlers(vm: PluginVm, root: RootContext, token: number): GrpcCalloutHandlers {
  const live = (): boolean => root.pendingGrpc.has(token);
  return {
    onInitialMetadata: (md) => live() && deliverGrpc(vm, root, token, { grpcInitialMetadata: md }, 'proxy_on_grpc_receive_initial_metadata', md.length),
    onMessage: (msg) => live() && deliverGrpc(vm, root, token, { grpcMessage: msg }, 'proxy_on_grpc_receive', msg.length),
    onClose: (code, message, trailers) => {
      if (!root.pendingGrpc.delete(token)) return;
      if (trailers.length > 0) deliverGrpc(vm, root, token, { grpcTrailingMetadata: trailers }, 'proxy_on_grpc_receive_trailing_metadata', trailers.length);
      deliverGrpc(vm, root, token, { status: { code, message } }, 'proxy_on_grpc_close', code);
    },
  };
}

function grpcOutcomeStatus(status: 'unknown_cluster' | 'internal_failure'): WasmResult {
  // Envoy parses the upstream as a cluster name or a GrpcService; neither matching is a parse failure.
  return status === 'unknown_cluster' ? WasmResult.ParseFailure : WasmResult.InternalFailure;
}

function grpcCall(vm: PluginVm, args: readonly number[]): WasmResult {
  const parsed = readGrpcArgs(vm, args);
  if (typeof parsed === 'number') return parsed;
  const [msgPtr, msgLen, timeoutMs, tokenPtr] = args.slice(8) as [number, number, number, number];
  const message = (msgLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(msgPtr, msgLen);
  if (message === undefined || !vm.memory.setU32(tokenPtr, 0)) return WasmResult.InvalidMemoryAccess;
  const service = vm.services.grpcCallout;
  const root = rootOf(vm);
  if (!service) return WasmResult.Unimplemented;
  if (!root) return WasmResult.BadArgument;
  const token = vm.nextCalloutToken(CalloutKind.GrpcCall);
  const outcome = service.unary({ ...parsed, timeoutMs: timeoutMs >>> 0 }, message, grpcHandlers(vm, root, token));
  if (outcome.status !== 'ok') return grpcOutcomeStatus(outcome.status);
  root.pendingGrpc.set(token, { call: outcome.call, stream: false });
  return writeU32(vm, tokenPtr, token);
}

function grpcStream(vm: PluginVm, args: readonly number[]): WasmResult {
  const parsed = readGrpcArgs(vm, args);
  if (typeof parsed === 'number') return parsed;
  const tokenPtr = args[8]!;
  if (!vm.memory.setU32(tokenPtr, 0)) return WasmResult.InvalidMemoryAccess;
  const service = vm.services.grpcCallout;
  const root = rootOf(vm);
  if (!service) return WasmResult.Unimplemented;
  if (!root) return WasmResult.BadArgument;
  const token = vm.nextCalloutToken(CalloutKind.GrpcStream);
  const outcome = service.stream({ ...parsed, timeoutMs: 0 }, grpcHandlers(vm, root, token));
  if (outcome.status !== 'ok') return grpcOutcomeStatus(outcome.status);
  root.pendingGrpc.set(token, { call: outcome.call, stream: true });
  return writeU32(vm, tokenPtr, token);
}

function grpcSend(vm: PluginVm, token: number, msgPtr: number, msgLen: number, endOfStream: number): WasmResult {
  const message = (msgLen >>> 0) === 0 ? Buffer.alloc(0) : vm.memory.copy(msgPtr, msgLen);
  if (message === undefined) return WasmResult.InvalidMemoryAccess;
  const pending = rootOf(vm)?.pendingGrpc.get(token >>> 0);
  if (!pending) return WasmResult.NotFound;
  if (!pending.stream) return WasmResult.BadArgument;
  (pending.call as GrpcStreamCall).send(message, endOfStream !== 0);
  return WasmResult.Ok;
}

/** Cancel: no further callbacks. Close: half-close a stream (its close callback still comes); a unary call is cancelled. */
function grpcEnd(vm: PluginVm, token: number, how: 'cancel' | 'close'): WasmResult {
  const root = rootOf(vm);
  const pending = root?.pendingGrpc.get(token >>> 0);
  if (!root || !pending) return WasmResult.NotFound;
  if (how === 'close' && pending.stream) {
    (pending.call as GrpcStreamCall).close();
    return WasmResult.Ok;
  }
  root.pendingGrpc.delete(token >>> 0);
  pending.call.cancel();
  return WasmResult.Ok;
}

// ---------- Higress Redis ----------

function redisInit(vm: PluginVm, cPtr: number, cLen: number, uPtr: number, uLen: number, pPtr: number, pLen: number, timeoutMs: number): WasmResult {
  const upstream = str(vm, cPtr, cLen);
  const username = str(vm, uPtr, uLen);
  const password = str(vm, pPtr, pLen);
  if (upstream === undefined || username === undefined || password === undefined) return WasmResult.InvalidMemoryAccess;
  const root = rootOf(vm);
  if (!root) return WasmResult.BadArgument;
  const redis = vm.services.redis;
  if (!redis) return WasmResult.BadArgument;
  const outcome = redis.init(root, { upstream, username, password, timeoutMs: timeoutMs >>> 0 });
  if (outcome.status === 'ok') return WasmResult.Ok;
  if (outcome.status === 'unsupported_cluster') {
    vm.logger.warn({ plugin: root.label, cluster: upstream.split('?')[0], reason: outcome.reason }, 'proxy_redis_init refused');
  }
  return WasmResult.BadArgument;
}

type RedisDelivery = { readonly kind: 'export' } | { readonly kind: 'table'; readonly index: number };

const EXPORT_DELIVERY: RedisDelivery = { kind: 'export' };
/** root.reply between deliveries (nothing may be read); shared, never mutated. */
const NO_REPLY: CalloutReplyState = Object.freeze({});

/**
 * Dispatch shared by proxy_redis_call and the note's proxy_dispatch_redis_call. Returns the token (> 0) or the
 * negated WasmResult of a refusal (a number rather than an object: this runs once per plugin Redis call).
 */
function dispatchRedis(vm: PluginVm, cPtr: number, cLen: number, qPtr: number, qLen: number, delivery: RedisDelivery): number {
  const upstream = vm.memory.stringCached(cPtr, cLen);
  // A view, not a copy: the service copies the query before call() returns.
  const query = vm.memory.view(qPtr, qLen);
  if (upstream === undefined || query === undefined) return -WasmResult.InvalidMemoryAccess;
  const root = rootOf(vm);
  const redis = vm.services.redis;
  if (!root || !redis) return -WasmResult.BadArgument;
  const token = vm.nextCalloutToken(CalloutKind.RedisCall);
  const epoch = root.redisEpoch;
  const outcome = redis.call(root, upstream, query, (reply) => {
    if (root.redisEpoch !== epoch) return; // cancelled: the root is gone or the VM failed
    // The service calls back from the event loop, never inside proxy_redis_call; if a guest call is running
    // (another root's reply callback), the delivery waits until it returned.
    if (vm.inGuestCall) vm.whenIdle(() => deliverRedisReply(vm, root, token, reply, delivery));
    else deliverRedisReply(vm, root, token, reply, delivery);
  });
  switch (outcome.status) {
    case 'ok':
      return token;
    case 'no_host':
      return -WasmResult.InternalFailure;
    case 'unsupported_cluster':
      vm.logger.warn({ plugin: root.label, cluster: upstream, reason: outcome.reason }, 'Redis call refused');
      return -WasmResult.BadArgument;
    default:
      return -WasmResult.BadArgument;
  }
}

function deliverRedisReply(vm: PluginVm, root: RootContext, token: number, reply: RedisReply, delivery: RedisDelivery): void {
  if (vm.contexts.get(root.id) !== root || vm.failed) return;
  const bytes = reply.ok ? reply.bytes : undefined;
  const status = reply.ok ? RedisStatus.Ok : RedisStatus.NetworkError;
  const size = bytes?.length ?? 0;
  root.reply = bytes ? { redisReply: bytes } : NO_REPLY;
  try {
    if (delivery.kind === 'export') {
      vm.callGuest(root, 'proxy_on_redis_call_response', root.id, token, status, size);
    } else if (!vm.callTable(root, delivery.index, token, status, size) && !vm.failed) {
      vm.logger.warn({ plugin: root.label, token, index: delivery.index }, 'Redis callback table entry is no longer valid; reply dropped');
    }
  } finally {
    root.reply = NO_REPLY;
  }
}

function redisCall(vm: PluginVm, cPtr: number, cLen: number, qPtr: number, qLen: number, tokenPtr: number): WasmResult {
  // cpp-host writes 0 first so a bad token pointer fails before anything is sent.
  if (!vm.memory.setU32(tokenPtr, 0)) return WasmResult.InvalidMemoryAccess;
  const token = dispatchRedis(vm, cPtr, cLen, qPtr, qLen, EXPORT_DELIVERY);
  if (token < 0) return -token as WasmResult;
  return writeU32(vm, tokenPtr, token);
}

/** The requirements note's variant: token (> 0) or -1; the reply goes to table[callbackIndex](token, status, size). */
function dispatchRedisCall(vm: PluginVm, cPtr: number, cLen: number, qPtr: number, qLen: number, callbackIndex: number): number {
  const f = vm.tableFunction(callbackIndex);
  if (!f || f.length !== 3) return -1;
  const token = dispatchRedis(vm, cPtr, cLen, qPtr, qLen, { kind: 'table', index: callbackIndex });
  return token > 0 ? token : -1;
}

/** The note's reader: a fresh guest-allocated copy of reply[start, start+min(max, size-start)), or -1. */
function getRedisCallResponse(vm: PluginVm, start: number, max: number): number {
  const reply = rootOf(vm)?.reply.redisReply;
  if (!reply || start < 0 || max <= 0 || start >= reply.length) return -1;
  const n = Math.min(max, reply.length - start);
  const ptr = vm.allocate(n);
  if (ptr === 0 || !vm.memory.write(ptr, reply.subarray(start, start + n))) return -1;
  return ptr;
}

// ---------- Higress upstream hosts ----------

/** Pairs of `ip:port` -> JSON; an empty list is (0, 0) (the Go SDK then reports NotFound itself). */
function getUpstreamHosts(vm: PluginVm, ptrPtr: number, sizePtr: number): WasmResult {
  const hosts = httpCtx(vm)?.stream.host.upstreamHosts?.() ?? [];
  return hosts.length === 0 ? copyOut(vm, EMPTY, ptrPtr, sizePtr) : copyPairsOut(vm, hosts, ptrPtr, sizePtr);
}

/** cpp-host always answers OK; the override takes effect if the request has not been routed yet. */
function setUpstreamOverrideHost(vm: PluginVm, aPtr: number, aLen: number): WasmResult {
  const address = str(vm, aPtr, aLen);
  if (address === undefined) return WasmResult.InvalidMemoryAccess;
  httpCtx(vm)?.stream.host.setUpstreamOverrideHost?.(address);
  return WasmResult.Ok;
}

// ---------- 0.1.0 legacy ----------

function getConfiguration(vm: PluginVm, ptrPtr: number, sizePtr: number): WasmResult {
  const root = rootOf(vm);
  if (!root) return WasmResult.NotFound;
  const bytes = vm.currentCallback === 'proxy_on_vm_start' ? vm.vmConfiguration : root.plugin.configuration;
  return copyOut(vm, bytes, ptrPtr, sizePtr);
}

// ---------- the table ----------


export const HOST_FUNCTIONS: readonly HostFunction[] = [
  hostFn('proxy_log', p(3), ALL_ABIS, 'spec', (vm, a, b, c) => log(vm, a, b, c)),
  hostFn('proxy_get_log_level', p(1), V021_PLUS, 'spec', (vm, ptr) => writeU32(vm, ptr, vm.services.logLevel())),
  hostFn('proxy_get_current_time_nanoseconds', p(1), ALL_ABIS, 'spec', (vm, ptr) =>
    vm.memory.setU64(ptr, BigInt(Date.now()) * 1_000_000n) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess),
  hostFn('proxy_set_tick_period_milliseconds', p(1), ALL_ABIS, 'spec', (vm, ms) => setTickPeriod(vm, ms)),
  hostFn('proxy_get_buffer_bytes', p(5), ALL_ABIS, 'spec', (vm, t, s, m, pp, sp) => getBufferBytes(vm, t, s, m, pp, sp)),
  hostFn('proxy_set_buffer_bytes', p(5), ALL_ABIS, 'spec', (vm, t, s, n, vp, vl) => setBufferBytes(vm, t, s, n, vp, vl)),
  hostFn('proxy_get_buffer_status', p(3), ALL_ABIS, 'spec', (vm, t, sp, fp) => getBufferStatus(vm, t, sp, fp)),
  hostFn('proxy_get_header_map_size', p(2), ALL_ABIS, 'spec', (vm, t, sp) => getHeaderMapSize(vm, t, sp)),
  hostFn('proxy_get_header_map_pairs', p(3), ALL_ABIS, 'spec', (vm, t, pp, sp) => getHeaderMapPairs(vm, t, pp, sp)),
  hostFn('proxy_set_header_map_pairs', p(3), ALL_ABIS, 'spec', (vm, t, ptr, len) => setHeaderMapPairs(vm, t, ptr, len)),
  hostFn('proxy_get_header_map_value', p(5), ALL_ABIS, 'spec', (vm, t, kp, kl, pp, sp) => getHeaderMapValue(vm, t, kp, kl, pp, sp)),
  hostFn('proxy_add_header_map_value', p(5), ALL_ABIS, 'spec', (vm, t, kp, kl, vp, vl) => addHeaderMapValue(vm, t, kp, kl, vp, vl)),
  hostFn('proxy_replace_header_map_value', p(5), ALL_ABIS, 'spec', (vm, t, kp, kl, vp, vl) => replaceHeaderMapValue(vm, t, kp, kl, vp, vl)),
  hostFn('proxy_remove_header_map_value', p(3), ALL_ABIS, 'spec', (vm, t, kp, kl) => removeHeaderMapValue(vm, t, kp, kl)),
  hostFn('proxy_continue_stream', p(1), V02_PLUS, 'spec', (vm, t) => streamAction(vm, t, 'continueStream')),
  hostFn('proxy_close_stream', p(1), V02_PLUS, 'spec', (vm, t) => streamAction(vm, t, 'closeStream')),
  hostFn('proxy_send_local_response', p(8), ALL_ABIS, 'spec', (vm, s, dp, dl, bp, bl, hp, hl, g) => sendLocalResponse(vm, s, dp, dl, bp, bl, hp, hl, g)),
  hostFn('proxy_get_status', p(3), ALL_ABIS, 'spec', (vm, cp, mp, ml) => getStatus(vm, cp, mp, ml)),
  hostFn('proxy_http_call', p(10), ALL_ABIS, 'spec', (vm, a, b, c, d, e, f, g, h, t, tok) => httpCall(vm, a, b, c, d, e, f, g, h, t, tok)),
  hostFn('proxy_grpc_call', p(12), ALL_ABIS, 'spec', (vm, ...args) => grpcCall(vm, args)),
  hostFn('proxy_grpc_stream', p(9), ALL_ABIS, 'spec', (vm, ...args) => grpcStream(vm, args)),
  hostFn('proxy_grpc_send', p(4), ALL_ABIS, 'spec', (vm, tok, mp, ml, eos) => grpcSend(vm, tok, mp, ml, eos)),
  hostFn('proxy_grpc_cancel', p(1), ALL_ABIS, 'spec', (vm, tok) => grpcEnd(vm, tok, 'cancel')),
  hostFn('proxy_grpc_close', p(1), ALL_ABIS, 'spec', (vm, tok) => grpcEnd(vm, tok, 'close')),
  hostFn('proxy_set_shared_data', p(5), ALL_ABIS, 'spec', (vm, kp, kl, vp, vl, cas) => setSharedData(vm, kp, kl, vp, vl, cas)),
  hostFn('proxy_get_shared_data', p(5), ALL_ABIS, 'spec', (vm, kp, kl, pp, sp, cp) => getSharedData(vm, kp, kl, pp, sp, cp)),
  hostFn('proxy_register_shared_queue', p(3), ALL_ABIS, 'spec', (vm, np, nl, ip) => registerSharedQueue(vm, np, nl, ip)),
  hostFn('proxy_resolve_shared_queue', p(5), ALL_ABIS, 'spec', (vm, vp, vl, np, nl, ip) => resolveSharedQueue(vm, vp, vl, np, nl, ip)),
  hostFn('proxy_enqueue_shared_queue', p(3), ALL_ABIS, 'spec', (vm, id, vp, vl) => enqueueSharedQueue(vm, id, vp, vl)),
  hostFn('proxy_dequeue_shared_queue', p(3), ALL_ABIS, 'spec', (vm, id, pp, sp) => dequeueSharedQueue(vm, id, pp, sp)),
  hostFn('proxy_define_metric', p(4), ALL_ABIS, 'spec', (vm, t, np, nl, ip) => defineMetric(vm, t, np, nl, ip)),
  hostFn('proxy_record_metric', [i, l], ALL_ABIS, 'spec', (vm, id, v) => recordMetric(vm, id, v)),
  hostFn('proxy_increment_metric', [i, l], ALL_ABIS, 'spec', (vm, id, d) => incrementMetric(vm, id, d)),
  hostFn('proxy_get_metric', p(2), ALL_ABIS, 'spec', (vm, id, vp) => getMetric(vm, id, vp)),
  hostFn('proxy_get_property', p(4), ALL_ABIS, 'spec', (vm, pp, pl, rp, rl) => getProperty(vm, pp, pl, rp, rl)),
  hostFn('proxy_set_property', p(4), ALL_ABIS, 'spec', (vm, pp, pl, vp, vl) => setProperty(vm, pp, pl, vp, vl)),
  hostFn('proxy_set_effective_context', p(1), ALL_ABIS, 'spec', (vm, id) => setEffectiveContext(vm, id)),
  hostFn('proxy_done', [], ALL_ABIS, 'spec', (vm) => done(vm)),
  hostFn('proxy_call_foreign_function', p(6), ALL_ABIS, 'spec', (vm, np, nl, ap, al, rp, rl) => callForeignFunction(vm, np, nl, ap, al, rp, rl)),
  // 0.1.0 only
  hostFn('proxy_get_configuration', p(2), V01, 'spec-0.1.0', (vm, pp, sp) => getConfiguration(vm, pp, sp)),
  hostFn('proxy_continue_request', [], V01, 'spec-0.1.0', (vm) => streamAction(vm, StreamType.HttpRequest, 'continueStream')),
  hostFn('proxy_continue_response', [], V01, 'spec-0.1.0', (vm) => streamAction(vm, StreamType.HttpResponse, 'continueStream')),
  hostFn('proxy_clear_route_cache', [], V01, 'spec-0.1.0', (vm) => {
    httpCtx(vm)?.stream.host.clearRouteCache?.();
    return WasmResult.Ok;
  }),
  // Higress (every ABI, as in the Higress cpp-host FOR_ALL_HOST_FUNCTIONS)
  hostFn('proxy_redis_init', p(7), ALL_ABIS, 'higress', (vm, a, b, c, d, e, f, t) => redisInit(vm, a, b, c, d, e, f, t)),
  hostFn('proxy_redis_call', p(5), ALL_ABIS, 'higress', (vm, a, b, c, d, tok) => redisCall(vm, a, b, c, d, tok)),
  hostFn('proxy_inject_encoded_data_to_filter_chain', p(3), ALL_ABIS, 'higress', (vm, bp, bl, eos) => injectEncodedDataToFilterChain(vm, bp, bl, eos)),
  hostFn('proxy_get_upstream_hosts', p(2), ALL_ABIS, 'higress', (vm, pp, sp) => getUpstreamHosts(vm, pp, sp)),
  hostFn('proxy_set_upstream_override_host', p(2), ALL_ABIS, 'higress', (vm, ap, al) => setUpstreamOverrideHost(vm, ap, al)),
  // The requirements note's variant
  hostFn('proxy_dispatch_redis_call', p(5), ALL_ABIS, 'note-variant', (vm, a, b, c, d, cb) => dispatchRedisCall(vm, a, b, c, d, cb)),
  hostFn('proxy_get_redis_call_response', p(2), ALL_ABIS, 'note-variant', (vm, s, m) => getRedisCallResponse(vm, s, m)),
  // cpp-host extras imported by Emscripten C++ modules
  hostFn('emscripten_notify_memory_growth', p(1), ALL_ABIS, 'cpp-host', () => undefined, 'none'),
  hostFn('pthread_equal', p(2), ALL_ABIS, 'cpp-host', (_vm, a, b) => (a === b ? 1 : 0)),
];

/** The `env` namespace for one VM of the given ABI. */
export function buildHostImports(vm: PluginVm, abi: AbiVersion, module?: WebAssembly.Module): Record<string, WebAssembly.ImportValue> {
  const env: Record<string, WebAssembly.ImportValue> = {};
  const observe = combineObservers(vm.services.onHostCall, module ? hostCallRecorder(module) : undefined);
  for (const f of HOST_FUNCTIONS) {
    if (!f.abis.includes(abi)) continue;
    const call = guarded(vm, f);
    env[f.name] = observe
      ? (...args: Arg[]) => {
          const result = call(...args);
          observe(f.name, typeof result === 'number' ? result : undefined);
          return result;
        }
      : call;
  }
  return env;
}

/**
 * The import V8 calls: the handler with the VM, an exception turned into INTERNAL_FAILURE (never thrown into the
 * guest). One closure per arity instead of rest parameters and a spread: those built an arguments array on every
 * host call, the hottest path a plugin has.
 */
function guarded(vm: PluginVm, f: HostFunction): (...args: Arg[]) => number | void {
  const h = f.handler;
  const failed = (err: unknown): number | undefined => {
    vm.logger.error({ function: f.name, err: String(err) }, 'host function failed');
    return f.result === 'none' ? undefined : WasmResult.InternalFailure;
  };
  switch (f.params.length) {
    case 0: return () => { try { return h(vm); } catch (err) { return failed(err); } };
    case 1: return (a) => { try { return h(vm, a); } catch (err) { return failed(err); } };
    case 2: return (a, b) => { try { return h(vm, a, b); } catch (err) { return failed(err); } };
    case 3: return (a, b, c) => { try { return h(vm, a, b, c); } catch (err) { return failed(err); } };
    case 4: return (a, b, c, d) => { try { return h(vm, a, b, c, d); } catch (err) { return failed(err); } };
    case 5: return (a, b, c, d, e) => { try { return h(vm, a, b, c, d, e); } catch (err) { return failed(err); } };
    default: return (...args) => { try { return h(vm, ...args); } catch (err) { return failed(err); } };
  }
}

type HostCallObserver = (fn: string, status: number | undefined) => void;

function combineObservers(a: HostCallObserver | undefined, b: HostCallObserver | undefined): HostCallObserver | undefined {
  if (!a || !b) return a ?? b;
  return (fn, status) => {
    a(fn, status);
    b(fn, status);
  };
}

/** Names every function import the module declares that `imports` does not provide (better than a bare LinkError). */
export function missingImports(module: WebAssembly.Module, imports: WebAssembly.Imports): string[] {
  return WebAssembly.Module.imports(module)
    .filter((imp) => imp.kind === 'function' && typeof imports[imp.module]?.[imp.name] !== 'function')
    .map((imp) => `${imp.module}.${imp.name}`);
}
