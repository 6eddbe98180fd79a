// Conformance probe: a real plugin that exercises every host function. Each request names a probe in the
// `x-probe` request header (request-body probes run from proxy_on_request_body); the probe calls host
// functions and logs one line per call: `<probe>.<step> status=<n> [value=<text>]`. test/abi/conformance.test.ts
// drives every probe and checks statuses and values against the spec; it also checks that every host function
// in the table was exercised.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues } from "@gcoredev/proxy-wasm-sdk-as/assembly";
import * as h from "./imports";

const rp = new ArrayBuffer(8);
const rs = new ArrayBuffer(8);
const rc = new ArrayBuffer(8);
function P(): usize { return changetype<usize>(rp); }
function S(): usize { return changetype<usize>(rs); }
function C(): usize { return changetype<usize>(rc); }
function u32At(p: usize): u32 { return load<u32>(p); }
function returned(): string {
  const ptr = load<u32>(P());
  const size = load<u32>(S());
  if (size == 0) return "";
  return String.UTF8.decodeUnsafe(<usize>ptr, <usize>size);
}
function returnedHex(): string {
  const ptr = load<u32>(P());
  const size = load<u32>(S());
  let out = "";
  for (let i: u32 = 0; i < size; i++) {
    const b = load<u8>(<usize>ptr + i);
    out += (b < 16 ? "0" : "") + b.toString(16);
  }
  return out;
}
function b(s: string): ArrayBuffer { return String.UTF8.encode(s); }
function bp(x: ArrayBuffer): usize { return changetype<usize>(x); }
function say(line: string): void {
  const m = b(line);
  h.log_(2, bp(m), m.byteLength);
}
function rec(step: string, status: u32, value: string = ""): void {
  say(step + " status=" + status.toString() + (value.length > 0 ? " value=" + value : ""));
}

let ticks = 0;
let queueId: u32 = 0;
let counterId: u32 = 0;

function pairs(kv: string[]): ArrayBuffer {
  // u32 count, (u32 klen, u32 vlen)*, (k\0v\0)*
  const n = kv.length / 2;
  let size = 4 + n * 8;
  for (let i = 0; i < kv.length; i++) size += String.UTF8.byteLength(kv[i]) + 1;
  const out = new Uint8Array(size);
  store<u32>(changetype<usize>(out.buffer), n);
  let data = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const k = b(kv[2 * i]);
    const v = b(kv[2 * i + 1]);
    store<u32>(changetype<usize>(out.buffer) + 4 + i * 8, k.byteLength);
    store<u32>(changetype<usize>(out.buffer) + 8 + i * 8, v.byteLength);
    out.set(Uint8Array.wrap(k), data); data += k.byteLength + 1;
    out.set(Uint8Array.wrap(v), data); data += v.byteLength + 1;
  }
  return out.buffer;
}

function getHeader(map: u32, name: string): string {
  const k = b(name);
  const st = h.get_map_value(map, bp(k), k.byteLength, P(), S());
  return st == 0 ? returned() : "<" + st.toString() + ">";
}

function probeHeaders(map: u32): void {
  let st = h.get_map_size(map, S());
  rec("headers.size", st, u32At(S()).toString());
  st = h.get_map_pairs(map, P(), S());
  rec("headers.pairs", st, u32At(S()).toString());
  rec("headers.get", 0, getHeader(map, "X-Probe"));
  const missing = b("x-missing");
  rec("headers.get_missing", h.get_map_value(map, bp(missing), missing.byteLength, P(), S()));
  const k = b("x-added"); const v1 = b("one"); const v2 = b("two");
  rec("headers.add", h.add_map_value(map, bp(k), k.byteLength, bp(v1), v1.byteLength));
  rec("headers.add2", h.add_map_value(map, bp(k), k.byteLength, bp(v2), v2.byteLength), getHeader(map, "x-added"));
  const v3 = b("three");
  rec("headers.replace", h.replace_map_value(map, bp(k), k.byteLength, bp(v3), v3.byteLength), getHeader(map, "x-added"));
  rec("headers.remove", h.remove_map_value(map, bp(k), k.byteLength), getHeader(map, "x-added"));
  rec("headers.remove_absent", h.remove_map_value(map, bp(k), k.byteLength));
  rec("headers.bad_map", h.get_map_value(42, bp(k), k.byteLength, P(), S()));
}

function probeSetPairs(): void {
  const pp = pairs([":path", "/replaced", "x-only", "1"]);
  rec("set_pairs", h.set_map_pairs(0, bp(pp), pp.byteLength), getHeader(0, ":path") + "," + getHeader(0, "x-only") + "," + getHeader(0, "x-probe"));
  const bad = b("\xff\xff\xff\x7f");
  rec("set_pairs.malformed", h.set_map_pairs(0, bp(bad), bad.byteLength));
}

function probeTime(): void {
  const st = h.get_time(P());
  rec("time", st, (load<u64>(P()) / 1000000000).toString());
  rec("log_level", h.get_log_level(P()), u32At(P()).toString());
  const m = b("hello from probe");
  rec("log", h.log_(3, bp(m), m.byteLength));
  rec("log.bad_level", h.log_(6, bp(m), m.byteLength));
}

function probeConfig(): void {
  rec("buffer.config", h.get_buffer_bytes(7, 0, 1000, P(), S()), returned());
  rec("buffer.config_slice", h.get_buffer_bytes(7, 2, 3, P(), S()), returned());
  rec("buffer.config_past_end", h.get_buffer_bytes(7, 100, 10, P(), S()), u32At(S()).toString() + "/" + u32At(P()).toString());
  rec("buffer.vm_config", h.get_buffer_bytes(6, 0, 1000, P(), S()), returned());
  rec("buffer.status", h.get_buffer_status(7, S(), C()), u32At(S()).toString() + "/" + u32At(C()).toString());
  rec("buffer.unknown_type", h.get_buffer_bytes(10, 0, 10, P(), S()));
  rec("buffer.unavailable", h.get_buffer_bytes(4, 0, 10, P(), S()));
  rec("buffer.set_readonly", h.set_buffer_bytes(7, 0, 0, 0, 0));
}

function probeShared(): void {
  const k = b("probe-key"); const v = b("v1"); const v2 = b("v2");
  const missing = b("probe-missing");
  rec("shared.get_missing", h.get_shared(bp(missing), missing.byteLength, P(), S(), C()));
  rec("shared.set", h.set_shared(bp(k), k.byteLength, bp(v), v.byteLength, 0));
  let st = h.get_shared(bp(k), k.byteLength, P(), S(), C());
  const cas = u32At(C());
  rec("shared.get", st, returned());
  rec("shared.set_stale_cas", h.set_shared(bp(k), k.byteLength, bp(v2), v2.byteLength, cas + 1000));
  rec("shared.set_cas", h.set_shared(bp(k), k.byteLength, bp(v2), v2.byteLength, cas));
  st = h.get_shared(bp(k), k.byteLength, P(), S(), C());
  rec("shared.get_after_cas", st, returned());
}

function probeQueue(): void {
  const n = b("probe-queue"); const v = b("item-1"); const empty = b("");
  let st = h.register_queue(bp(n), n.byteLength, P());
  queueId = u32At(P());
  rec("queue.register", st);
  st = h.resolve_queue(0, 0, bp(n), n.byteLength, P());
  rec("queue.resolve", st, u32At(P()) == queueId ? "same" : "different");
  const other = b("no-such-queue");
  rec("queue.resolve_missing", h.resolve_queue(0, 0, bp(other), other.byteLength, P()));
  rec("queue.enqueue", h.enqueue(queueId, bp(v), v.byteLength));
  rec("queue.enqueue_unknown", h.enqueue(queueId + 1000, bp(v), v.byteLength));
  rec("queue.dequeue_unknown", h.dequeue(queueId + 1000, P(), S()));
}

function probeMetrics(): void {
  const c = b("probe_counter"); const g = b("probe_gauge"); const hist = b("probe_histogram");
  let st = h.define_metric(0, bp(c), c.byteLength, P()); counterId = u32At(P());
  rec("metric.define_counter", st);
  rec("metric.increment", h.increment_metric(counterId, 5));
  rec("metric.increment_negative_counter", h.increment_metric(counterId, -1));
  rec("metric.record_counter", h.record_metric(counterId, 2));
  st = h.get_metric(counterId, P());
  rec("metric.get_counter", st, load<u64>(P()).toString());
  st = h.define_metric(1, bp(g), g.byteLength, P()); const gaugeId = u32At(P());
  rec("metric.define_gauge", st);
  rec("metric.record_gauge", h.record_metric(gaugeId, 42));
  rec("metric.decrement_gauge", h.increment_metric(gaugeId, -2));
  st = h.get_metric(gaugeId, P());
  rec("metric.get_gauge", st, load<u64>(P()).toString());
  st = h.define_metric(2, bp(hist), hist.byteLength, P()); const histId = u32At(P());
  rec("metric.define_histogram", st);
  rec("metric.record_histogram", h.record_metric(histId, 7));
  rec("metric.get_histogram", h.get_metric(histId, P()));
  rec("metric.define_bad_type", h.define_metric(3, bp(c), c.byteLength, P()));
  rec("metric.get_unknown", h.get_metric(99999, P()));
}

function prop(path: string): string {
  const p = b(path);
  const st = h.get_property(bp(p), p.byteLength, P(), S());
  return st == 0 ? returned() : "<" + st.toString() + ">";
}

function probeProperties(): void {
  rec("property.plugin_name", 0, prop("plugin_name"));
  rec("property.plugin_root_id", 0, prop("plugin_root_id"));
  rec("property.plugin_vm_id", 0, prop("plugin_vm_id"));
  rec("property.request_path", 0, prop("request\0path"));
  rec("property.request_header", 0, prop("request\0headers\0x-probe"));
  rec("property.missing", 0, prop("no\0such\0thing"));
  const k = b("probe\0custom"); const v = b("custom-value");
  rec("property.set", h.set_property(bp(k), k.byteLength, bp(v), v.byteLength), prop("probe\0custom"));
  const code = b("response\0code");
  const st = h.get_property(bp(code), code.byteLength, P(), S());
  rec("property.response_code_before_response", st);
}

function probeStream(id: u32): void {
  rec("effective.self", h.set_effective_context(id));
  rec("effective.unknown", h.set_effective_context(123456));
  rec("done.not_pending", h.done());
  rec("status.none", h.get_status(C(), P(), S()));
  const n = b("get_log_level");
  rec("foreign.get_log_level", h.call_foreign(bp(n), n.byteLength, 0, 0, P(), S()), returnedHex());
  const bogus = b("no_such_function");
  rec("foreign.unknown", h.call_foreign(bp(bogus), bogus.byteLength, 0, 0, P(), S()));
  rec("grpc.call", h.grpc_call(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1000, P()));
  rec("grpc.stream", h.grpc_stream(0, 0, 0, 0, 0, 0, 0, 0, P()));
  rec("grpc.send", h.grpc_send(5, 0, 0, 0));
  rec("grpc.cancel", h.grpc_cancel(5));
  rec("grpc.close", h.grpc_close(5));
  const data = b("injected");
  rec("higress.inject_encoded_data", h.inject_encoded_data(bp(data), data.byteLength, 1));
  rec("higress.get_upstream_hosts", h.get_upstream_hosts(P(), S()), u32At(S()).toString());
  const host = b("10.0.0.1:80");
  rec("higress.set_upstream_override_host", h.set_upstream_override_host(bp(host), host.byteLength));
  h.emscripten_notify_memory_growth(0);
  rec("cpp_host.pthread_equal", 0, h.pthread_equal(3, 3).toString() + h.pthread_equal(3, 4).toString());
}

function probeHttpCall(): void {
  const cluster = b("callout-cluster");
  const good = pairs([":method", "GET", ":path", "/callout", ":authority", "callout.example"]);
  const noPath = pairs([":method", "GET", ":authority", "callout.example"]);
  const body = b("req-body");
  rec("http_call.missing_path", h.http_call(bp(cluster), cluster.byteLength, bp(noPath), noPath.byteLength, 0, 0, 0, 0, 1000, P()));
  const st = h.http_call(bp(cluster), cluster.byteLength, bp(good), good.byteLength, bp(body), body.byteLength, 0, 0, 1000, P());
  rec("http_call", st, u32At(P()).toString());
  const unknown = b("no-such-cluster");
  rec("http_call.unknown_cluster", h.http_call(bp(unknown), unknown.byteLength, bp(good), good.byteLength, 0, 0, 0, 0, 1000, P()));
}

class ProbeRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new ProbeStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    rec("root.set_property", h.set_property(bp(b("x")), 1, bp(b("y")), 1));
    return true;
  }
  onTick(): void {
    ticks++;
    say("tick " + ticks.toString());
  }
  onQueueReady(id: u32): void {
    const st = h.dequeue(id, P(), S());
    rec("queue.ready", st, returned() + " same=" + (id == queueId ? "yes" : "no"));
    rec("queue.dequeue_empty", h.dequeue(id, P(), S()));
  }
}

class ProbeStream extends Context {
  probe: string = "";
  constructor(context_id: u32, root: ProbeRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    this.probe = getHeader(0, "x-probe");
    const p = this.probe;
    if (p == "headers") probeHeaders(0);
    else if (p == "set_pairs") probeSetPairs();
    else if (p == "time") probeTime();
    else if (p == "config") probeConfig();
    else if (p == "shared") probeShared();
    else if (p == "queue") probeQueue();
    else if (p == "metrics") probeMetrics();
    else if (p == "properties") probeProperties();
    else if (p == "stream") probeStream(this.context_id);
    else if (p == "http_call") { probeHttpCall(); return FilterHeadersStatusValues.StopIteration; }
    else if (p == "tick_on") rec("tick.on", h.set_tick(5));
    else if (p == "tick_off") rec("tick.off", h.set_tick(0));
    else if (p == "continue") {
      rec("continue.request", h.continue_stream(0));
      rec("continue.downstream", h.continue_stream(2));
      rec("continue.bad_type", h.continue_stream(9));
      rec("close.response", h.close_stream(1));
    } else if (p == "local") {
      const details = b("probe_local"); const body = b("denied\n"); const hd = pairs(["x-local", "yes"]);
      rec("local.first", h.send_local_response(403, bp(details), details.byteLength, bp(body), body.byteLength, bp(hd), hd.byteLength, -1));
      rec("local.second", h.send_local_response(500, bp(details), details.byteLength, 0, 0, 0, 0, -1));
      return FilterHeadersStatusValues.Continue; // forced to StopAll by the host after a local reply
    } else if (p == "body") return FilterHeadersStatusValues.Continue;
    return FilterHeadersStatusValues.Continue;
  }
  onRequestBody(size: usize, eos: bool): FilterDataStatusValues {
    if (this.probe != "body") return FilterDataStatusValues.Continue;
    rec("body.size_arg", 0, size.toString());
    rec("body.get", h.get_buffer_bytes(0, 0, 1000, P(), S()), returned());
    rec("body.get_slice", h.get_buffer_bytes(0, 2, 3, P(), S()), returned());
    rec("body.status", h.get_buffer_status(0, S(), C()), u32At(S()).toString());
    const pre = b("<<"); const post = b(">>"); const mid = b("MID");
    rec("body.prepend", h.set_buffer_bytes(0, 0, 0, bp(pre), pre.byteLength));
    rec("body.append", h.set_buffer_bytes(0, 0x7fffffff, 0, bp(post), post.byteLength));
    rec("body.splice", h.set_buffer_bytes(0, 2, 5, bp(mid), mid.byteLength));
    h.get_buffer_bytes(0, 0, 1000, P(), S());
    rec("body.after", 0, returned());
    return FilterDataStatusValues.Continue;
  }
  onResponseHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    if (this.probe == "properties") {
      const code = b("response\0code");
      rec("property.response_code", h.get_property(bp(code), code.byteLength, P(), S()), returnedHex());
    }
    if (this.probe == "headers") rec("response.headers.get", 0, getHeader(2, ":status"));
    return FilterHeadersStatusValues.Continue;
  }
  onLog(): void {
    if (this.probe == "headers") rec("on_log.request_header", 0, getHeader(0, "x-probe"));
  }
}

export function proxy_on_http_call_response(root: u32, token: u32, headers: u32, bodySize: u32, trailers: u32): void {
  rec("http_call.response", 0, token.toString() + " headers=" + headers.toString() + " body=" + bodySize.toString() + " trailers=" + trailers.toString());
  rec("http_call.response_header", 0, getHeader(6, ":status"));
  rec("http_call.response_body", h.get_buffer_bytes(4, 0, bodySize, P(), S()), returned());
  rec("http_call.response_trailer", 0, getHeader(7, "grpc-status"));
}

registerRootContext((context_id: u32) => new ProbeRoot(context_id), "abi_probe");
