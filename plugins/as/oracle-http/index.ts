// The oracle's own plugin: only standard Proxy-Wasm 0.2.1 imports, so it loads in stock Envoy and in the sidecar
// alike (the project's http-test plugin imports Higress's proxy_get_upstream_hosts, which stock Envoy refuses).
// Each request picks behaviours in `x-oracle: a,b,...`; one Envoy and one sidecar serve every case of a test file.
//   headers        request: add x-oracle-req, replace x-replace-me, remove x-remove-me; response: add x-oracle-resp,
//                  remove x-upstream-remove
//   log            one proxy_log at each level 0..5
//   metrics        counter oracle_requests (+1), gauge oracle_gauge (=7), histogram oracle_hist (5)
//   local-req-headers / local-req-body / local-resp-headers / local-resp-body
//                  a local reply from that phase (status 403 / 418 / 502 / 503, header x-local: <phase>)
//   body-rewrite   buffers both bodies; request upper-cased, response wrapped in [ ]; content-length removed
//   buffer-req / buffer-resp   StopIterationAndBuffer until end of stream, no change (the buffer limits)
//   callout        pauses; proxy_http_call to cluster `callout` (or x-callout-cluster; path x-callout-path, timeout
//                  x-callout-timeout ms)
//                  and resumes with x-callout-status / x-callout-body, or a local 502 when it failed
//   trailers       adds x-oracle-trailer to the response trailers
//   props          response headers x-prop-*: request.path, request.method, plugin_name, plugin_root_id, response.code
//   hostile        host calls with out-of-range pointers and unknown enums; a local 200 whose body is the statuses
//   stop-headers   StopIteration from request headers; at the body's end adds x-body-seen and continues
// The configuration is the plugin's name (added to x-oracle-req / x-oracle-resp / logs).
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext, Context, BaseContext, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues,
  FilterTrailersStatusValues, stream_context, get_buffer_bytes, set_buffer_bytes, BufferTypeValues, continue_request,
  Headers, makeHeaderPair, send_local_response, GrpcStatusValues, WasmResultValues, get_property,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";
import * as imports from "@gcoredev/proxy-wasm-sdk-as/assembly/imports";

let name = "";
let counterId: u32 = 0;
let gaugeId: u32 = 0;
let histId: u32 = 0;

function local(status: u32, phase: string, body: string): void {
  const headers: Headers = [];
  headers.push(makeHeaderPair("x-local", phase));
  send_local_response(status, "oracle_" + phase.replace("-", "_"), String.UTF8.encode(body), headers, <GrpcStatusValues>-1);
}

/** proxy_log itself (the SDK's log() writes "[LEVEL]: " lines to WASI stdout instead). */
function plog(level: u32, message: string): void {
  const m = String.UTF8.encode(message);
  imports.proxy_log(level, changetype<usize>(m), m.byteLength);
}

function defineMetric(kind: u32, metric: string): u32 {
  const n = String.UTF8.encode(metric);
  const id = new ArrayBuffer(4);
  imports.proxy_define_metric(kind, changetype<usize>(n), n.byteLength, changetype<usize>(id));
  return load<u32>(changetype<usize>(id));
}

function hex(n: u32): string {
  return n.toString(16);
}

/** The hostile calls of plugins/wat/hostile.wat that Envoy can link, from a stream callback instead of a tick. */
function hostile(): string {
  const ret: usize = 4096; // scratch for returned ptr/size: inside memory, not used by the allocator's first pages
  const key = String.UTF8.encode("k");
  const k = changetype<usize>(key);
  let out = "";
  out += hex(imports.proxy_log(2, 0xFFFFFF00, 100));
  out += hex(imports.proxy_log(9, k, 1));
  out += hex(imports.proxy_get_buffer_bytes(7, 0, 10, 0xFFFFFFF0, 0xFFFFFFF4));
  out += hex(imports.proxy_get_buffer_bytes(99, 0, 10, ret, ret + 4));
  out += hex(imports.proxy_set_shared_data(0xFFFFFF00, 10, k, 1, 0));
  out += hex(imports.proxy_get_shared_data(k, 1, ret, ret + 4, ret + 8));
  out += hex(imports.proxy_define_metric(7, k, 1, ret));
  out += hex(imports.proxy_get_current_time_nanoseconds(0xFFFFFFFC));
  out += hex(imports.proxy_set_effective_context(9999));
  out += hex(imports.proxy_get_header_map_value(99, k, 1, ret, ret + 4));
  out += hex(imports.proxy_get_property(0xFFFFFF00, 5, ret, ret + 4));
  out += hex(imports.proxy_enqueue_shared_queue(12345, k, 1));
  out += hex(imports.proxy_continue_stream(7));
  out += hex(imports.proxy_set_header_map_pairs(0, 0xFFFFFF00, 64));
  out += hex(imports.proxy_record_metric(424242, 5));
  out += hex(imports.proxy_get_buffer_bytes(7, 0xFFFFFFF0, 0x7FFFFFFF, ret, ret + 4));
  out += hex(imports.proxy_get_header_map_value(0, 0xFFFFFF00, 64, ret, ret + 4));
  out += hex(imports.proxy_add_header_map_value(0, k, 1, 0xFFFFFF00, 64));
  return out;
}

class OracleRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new OracleStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    name = size == 0 ? "" : String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, size));
    counterId = defineMetric(0, "oracle_requests");
    gaugeId = defineMetric(1, "oracle_gauge");
    histId = defineMetric(2, "oracle_hist");
    plog(2, "configured " + name);
    return true;
  }
}

function calloutDone(origin: BaseContext, headers: u32, bodySize: usize, _trailers: u32): void {
  if (headers == 0) {
    local(502, "callout", "callout failed\n");
    return;
  }
  const status = stream_context.headers.http_callback.get(":status");
  const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, <u32>bodySize));
  stream_context.headers.request.add("x-callout-status", status);
  stream_context.headers.request.add("x-callout-body", body);
  continue_request();
}

class OracleStream extends Context {
  actions: string[] = [];
  constructor(context_id: u32, root: OracleRoot) {
    super(context_id, root);
  }
  has(action: string): bool {
    return this.actions.includes(action);
  }
  onRequestHeaders(_n: u32, eos: bool): FilterHeadersStatusValues {
    const h = stream_context.headers.request.get("x-oracle");
    this.actions = h.length > 0 ? h.split(",") : [];
    if (this.has("log")) {
      for (let level: u32 = 0; level <= 5; level++) plog(level, "level " + level.toString() + " from " + name);
    }
    if (this.has("metrics")) {
      imports.proxy_increment_metric(counterId, 1);
      imports.proxy_record_metric(gaugeId, 7);
      imports.proxy_record_metric(histId, 5);
    }
    if (this.has("headers")) {
      stream_context.headers.request.add("x-oracle-req", name);
      stream_context.headers.request.replace("x-replace-me", "replaced");
      stream_context.headers.request.remove("x-remove-me");
    }
    if (this.has("props")) {
      stream_context.headers.request.add("x-prop-req-path", String.UTF8.decode(get_property("request\0path")));
      stream_context.headers.request.add("x-prop-req-method", String.UTF8.decode(get_property("request\0method")));
      stream_context.headers.request.add("x-prop-req-id-size", get_property("request\0id").byteLength.toString());
    }
    if (this.has("hostile")) {
      local(200, "hostile", hostile());
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.has("local-req-headers")) {
      local(403, "req-headers", "denied by " + name + "\n");
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.has("body-rewrite")) stream_context.headers.request.remove("content-length");
    if (this.has("callout")) {
      const headers: Headers = [];
      const path = stream_context.headers.request.get("x-callout-path");
      const timeout = stream_context.headers.request.get("x-callout-timeout");
      headers.push(makeHeaderPair(":method", "GET"));
      headers.push(makeHeaderPair(":path", path.length > 0 ? path : "/callout"));
      headers.push(makeHeaderPair(":authority", "callout.local"));
      const cluster = stream_context.headers.request.get("x-callout-cluster");
      const r = this.root_context.httpCall(cluster.length > 0 ? cluster : "callout", headers, new ArrayBuffer(0), [], timeout.length > 0 ? <u32>I32.parseInt(timeout) : 1000, this, calloutDone);
      if (r != WasmResultValues.Ok) local(500, "callout-dispatch", "callout dispatch failed: " + r.toString() + "\n");
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.has("stop-headers") && !eos) return FilterHeadersStatusValues.StopIteration;
    return FilterHeadersStatusValues.Continue;
  }
  onRequestBody(size: usize, eos: bool): FilterDataStatusValues {
    const buffering = this.has("body-rewrite") || this.has("buffer-req") || this.has("local-req-body") || this.has("stop-headers");
    if (!buffering) return FilterDataStatusValues.Continue;
    if (!eos) return FilterDataStatusValues.StopIterationAndBuffer;
    if (this.has("local-req-body")) {
      local(418, "req-body", "body of " + size.toString() + " bytes refused\n");
      return FilterDataStatusValues.StopIterationNoBuffer;
    }
    if (this.has("stop-headers")) stream_context.headers.request.add("x-body-seen", size.toString());
    if (this.has("body-rewrite")) {
      const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>size));
      set_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>size, String.UTF8.encode(body.toUpperCase()));
    }
    return FilterDataStatusValues.Continue;
  }
  onResponseHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    if (this.has("headers")) {
      stream_context.headers.response.add("x-oracle-resp", name);
      stream_context.headers.response.remove("x-upstream-remove");
    }
    if (this.has("props")) {
      stream_context.headers.response.add("x-prop-path", String.UTF8.decode(get_property("request\0path")));
      stream_context.headers.response.add("x-prop-method", String.UTF8.decode(get_property("request\0method")));
      stream_context.headers.response.add("x-prop-plugin-name", String.UTF8.decode(get_property("plugin_name")));
      stream_context.headers.response.add("x-prop-root-id", String.UTF8.decode(get_property("plugin_root_id")));
      const code = get_property("response\0code");
      stream_context.headers.response.add("x-prop-code-size", code.byteLength.toString());
      if (code.byteLength == 8) stream_context.headers.response.add("x-prop-code", load<u64>(changetype<usize>(code)).toString());
    }
    if (this.has("local-resp-headers")) {
      local(502, "resp-headers", "upstream answer replaced by " + name + "\n");
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.has("body-rewrite")) stream_context.headers.response.remove("content-length");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseBody(size: usize, eos: bool): FilterDataStatusValues {
    const buffering = this.has("body-rewrite") || this.has("buffer-resp") || this.has("local-resp-body");
    if (!buffering) return FilterDataStatusValues.Continue;
    if (!eos) return FilterDataStatusValues.StopIterationAndBuffer;
    if (this.has("local-resp-body")) {
      local(503, "resp-body", "response body of " + size.toString() + " bytes refused\n");
      return FilterDataStatusValues.StopIterationNoBuffer;
    }
    if (this.has("body-rewrite")) {
      const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, <u32>size));
      set_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, <u32>size, String.UTF8.encode("[" + body + "]"));
    }
    return FilterDataStatusValues.Continue;
  }
  onResponseTrailers(_n: u32): FilterTrailersStatusValues {
    if (this.has("trailers")) stream_context.trailers.response.add("x-oracle-trailer", name);
    return FilterTrailersStatusValues.Continue;
  }
  onLog(): void {
    if (this.has("log")) plog(2, "on_log " + name + " " + stream_context.headers.request.get(":path"));
  }
}

registerRootContext((context_id: u32) => new OracleRoot(context_id), "oracle_http");
