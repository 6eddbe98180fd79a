// Shared helpers for the project's AssemblyScript test plugins. The Redis imports are declared exactly as
// Higress's Go SDK declares them (higress-group/proxy-wasm-go-sdk abi_hostcalls.go): module `env`, same arity,
// empty strings passed as (0, 0).
import { free } from "@gcoredev/proxy-wasm-sdk-as/assembly/malloc";

@external("env", "proxy_redis_init")
export declare function proxy_redis_init(upstream_ptr: usize, upstream_len: usize, username_ptr: usize, username_len: usize,
  password_ptr: usize, password_len: usize, timeout_ms: u32): u32;

@external("env", "proxy_redis_call")
export declare function proxy_redis_call(upstream_ptr: usize, upstream_len: usize, query_ptr: usize, query_len: usize, token_ptr: usize): u32;

// The requirements note's variant.
@external("env", "proxy_dispatch_redis_call")
export declare function proxy_dispatch_redis_call(upstream_ptr: usize, upstream_len: usize, query_ptr: usize, query_len: usize, callback_ptr: u32): i32;

@external("env", "proxy_get_redis_call_response")
export declare function proxy_get_redis_call_response(start: i32, max_size: i32): i32;

@external("env", "proxy_get_buffer_bytes")
declare function proxy_get_buffer_bytes(typ: u32, start: u32, max: u32, ptr_ptr: usize, size_ptr: usize): u32;

@external("env", "proxy_get_header_map_value")
declare function proxy_get_header_map_value(typ: u32, key_ptr: usize, key_len: usize, ptr_ptr: usize, size_ptr: usize): u32;

@external("env", "proxy_set_effective_context")
export declare function proxy_set_effective_context(context_id: u32): u32;

@external("env", "proxy_continue_stream")
export declare function proxy_continue_stream(stream_type: u32): u32;

@external("env", "proxy_send_local_response")
declare function proxy_send_local_response(status: u32, details_ptr: usize, details_len: usize, body_ptr: usize, body_len: usize,
  headers_ptr: usize, headers_len: usize, grpc_status: i32): u32;

@external("env", "proxy_get_upstream_hosts")
declare function proxy_get_upstream_hosts(ptr_ptr: usize, size_ptr: usize): u32;

@external("env", "proxy_set_upstream_override_host")
declare function proxy_set_upstream_override_host(addr_ptr: usize, addr_len: usize): u32;

@external("env", "proxy_log")
declare function proxy_log(level: u32, ptr: usize, len: usize): u32;

export const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
export const BUFFER_REDIS_CALL_RESPONSE: u32 = 9;
export const MAP_REQUEST_HEADERS: u32 = 0;

/** UTF-8 bytes, or null for "" so that (ptr, len) is (0, 0) as the Go SDK passes it. */
export function utf8(s: string): ArrayBuffer | null {
  return s.length == 0 ? null : String.UTF8.encode(s);
}

export function ptrOf(b: ArrayBuffer | null): usize {
  return b === null ? 0 : changetype<usize>(b);
}

export function lenOf(b: ArrayBuffer | null): usize {
  return b === null ? 0 : <usize>b.byteLength;
}

export function log(level: u32, message: string): void {
  const b = String.UTF8.encode(message);
  proxy_log(level, changetype<usize>(b), b.byteLength);
}

/** A RESP array of bulk strings, command lower-cased, as wasm-go encodes every command. */
export function respCommand(args: string[]): ArrayBuffer {
  let out = "*" + args.length.toString() + "\r\n";
  for (let i = 0; i < args.length; i++) {
    const arg = i == 0 ? args[i].toLowerCase() : args[i];
    out += "$" + String.UTF8.byteLength(arg).toString() + "\r\n" + arg + "\r\n";
  }
  return String.UTF8.encode(out);
}

const retPtr = new ArrayBuffer(4);
const retSize = new ArrayBuffer(4);

/**
 * The (ptr, size) result of a host call. The host's copy is an ArrayBuffer of exactly `size` bytes that the SDK's
 * malloc pinned for the host; it is handed over as it is and unpinned, as the SDK's own readers do. (Copying it and
 * never unpinning it kept every header value and Redis reply alive for ever: guest memory doubled every few
 * seconds under load, issue 13.)
 */
function takeReturned(): ArrayBuffer {
  const ptr = <usize>load<u32>(changetype<usize>(retPtr));
  const size = load<u32>(changetype<usize>(retSize));
  if (size == 0 || ptr == 0) return new ArrayBuffer(0);
  const out = changetype<ArrayBuffer>(ptr);
  free(ptr);
  return out;
}

export function getBuffer(typ: u32, start: u32, max: u32): ArrayBuffer {
  const status = proxy_get_buffer_bytes(typ, start, max, changetype<usize>(retPtr), changetype<usize>(retSize));
  if (status != 0) return new ArrayBuffer(0);
  return takeReturned();
}

/** A request header, or null when absent. */
export function requestHeader(name: string): string | null {
  const k = String.UTF8.encode(name);
  const status = proxy_get_header_map_value(MAP_REQUEST_HEADERS, changetype<usize>(k), k.byteLength,
    changetype<usize>(retPtr), changetype<usize>(retSize));
  if (status != 0) return null;
  return String.UTF8.decode(takeReturned());
}

function pushU32(out: Uint8Array, at: i32, v: u32): void {
  out[at] = <u8>(v & 0xff);
  out[at + 1] = <u8>((v >> 8) & 0xff);
  out[at + 2] = <u8>((v >> 16) & 0xff);
  out[at + 3] = <u8>((v >> 24) & 0xff);
}

/** Proxy-Wasm pairs serialization for local-response headers. */
export function serializePairs(pairs: string[][]): ArrayBuffer {
  let size = 4;
  const keys = new Array<ArrayBuffer>(pairs.length);
  const values = new Array<ArrayBuffer>(pairs.length);
  for (let i = 0; i < pairs.length; i++) {
    keys[i] = String.UTF8.encode(pairs[i][0]);
    values[i] = String.UTF8.encode(pairs[i][1]);
    size += 8 + keys[i].byteLength + 1 + values[i].byteLength + 1;
  }
  const out = new Uint8Array(size);
  pushU32(out, 0, pairs.length);
  let lenAt = 4;
  let dataAt = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    pushU32(out, lenAt, keys[i].byteLength);
    pushU32(out, lenAt + 4, values[i].byteLength);
    lenAt += 8;
    out.set(Uint8Array.wrap(keys[i]), dataAt);
    dataAt += keys[i].byteLength + 1;
    out.set(Uint8Array.wrap(values[i]), dataAt);
    dataAt += values[i].byteLength + 1;
  }
  return out.buffer;
}

export function sendLocal(status: u32, details: string, body: ArrayBuffer, headers: string[][]): u32 {
  const d = String.UTF8.encode(details);
  const h = serializePairs(headers);
  return proxy_send_local_response(status, changetype<usize>(d), d.byteLength, changetype<usize>(body), body.byteLength,
    changetype<usize>(h), h.byteLength, -1);
}

/** `key=value` lines (the test plugins' configuration format). */
export function configValue(config: string, key: string, fallback: string): string {
  const lines = config.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const eq = line.indexOf("=");
    if (eq > 0 && line.substring(0, eq) == key) return line.substring(eq + 1);
  }
  return fallback;
}

export function pluginConfiguration(): string {
  return String.UTF8.decode(getBuffer(BUFFER_PLUGIN_CONFIGURATION, 0, 0xffffffff));
}

export function redisInit(cluster: string, username: string, password: string, timeoutMs: u32): u32 {
  const c = utf8(cluster);
  const u = utf8(username);
  const p = utf8(password);
  return proxy_redis_init(ptrOf(c), lenOf(c), ptrOf(u), lenOf(u), ptrOf(p), lenOf(p), timeoutMs);
}

/** proxy_redis_init for `cluster` with the `username`, `password` and `timeout` (ms, default 1000) config keys. */
export function redisInitFromConfig(config: string, cluster: string): u32 {
  const timeout = <u32>I32.parseInt(configValue(config, "timeout", "1000"));
  return redisInit(cluster, configValue(config, "username", ""), configValue(config, "password", ""), timeout);
}

/** Returns the status; the token is in `lastToken`. */
export let lastToken: u32 = 0;
const tokenOut = new ArrayBuffer(4);
export function redisCall(cluster: string, query: ArrayBuffer): u32 {
  const c = utf8(cluster);
  const status = proxy_redis_call(ptrOf(c), lenOf(c), changetype<usize>(query), query.byteLength, changetype<usize>(tokenOut));
  lastToken = load<u32>(changetype<usize>(tokenOut));
  return status;
}

export function splitArgs(cmd: string): string[] {
  const parts = cmd.split(" ");
  const out = new Array<string>(0);
  for (let i = 0; i < parts.length; i++) if (parts[i].length > 0) out.push(parts[i]);
  return out;
}

/** Higress proxy_get_upstream_hosts: the `ip:port` keys and JSON values, flattened as [k0, v0, k1, v1, ...]. */
export function upstreamHosts(): string[] {
  const out = new Array<string>(0);
  if (proxy_get_upstream_hosts(changetype<usize>(retPtr), changetype<usize>(retSize)) != 0) return out;
  const bytes = takeReturned();
  if (bytes.byteLength < 4) return out;
  const base = changetype<usize>(bytes);
  const n = load<u32>(base);
  let data = base + 4 + <usize>n * 8;
  for (let i: u32 = 0; i < n; i++) {
    const kLen = load<u32>(base + 4 + <usize>i * 8);
    const vLen = load<u32>(base + 8 + <usize>i * 8);
    out.push(String.UTF8.decodeUnsafe(data, kLen));
    data += kLen + 1;
    out.push(String.UTF8.decodeUnsafe(data, vLen));
    data += vLen + 1;
  }
  return out;
}

export function setUpstreamOverrideHost(address: string): u32 {
  const b = String.UTF8.encode(address);
  return proxy_set_upstream_override_host(changetype<usize>(b), b.byteLength);
}
