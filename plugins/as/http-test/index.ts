// A data-plane test plugin; behaviour is picked by `mode=` in its `key=value` configuration.
//   mode=body-rewrite : buffers request and response bodies; upper-cases the request body and wraps the
//                       response body in [ ]; removes content-length on both sides (as real plugins must).
//   mode=callout      : pauses the request, proxy_http_call(cluster=, path=, timeout=) and resumes it with
//                       x-callout-status / x-callout-body added; a failed callout (zero headers) → local 502.
//   mode=sse          : passes response chunks through as they come; counts them in shared data `sse_chunks`.
//   mode=lb           : Higress upstream hosts: adds `x-upstream-hosts: <ip:port>=<health_status>,...` from
//                       proxy_get_upstream_hosts and sends the request to `x-override-host` if given.
//   mode=pass         : does nothing else.
// In every mode: a request with `x-deny: <name>` (or `*`) gets a local 403 with a text body and no content-type (the host adds
// text/plain); request header `x-seen-by` gets `name=` appended (filter order); on_log increments shared data
// `on_log`.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext, Context, BaseContext, registerRootContext, FilterHeadersStatusValues, FilterDataStatusValues, stream_context,
  get_buffer_bytes, set_buffer_bytes, BufferTypeValues, continue_request, Headers, makeHeaderPair, get_shared_data,
  set_shared_data, WasmResultValues,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";
import { configValue, pluginConfiguration, requestHeader, sendLocal, setUpstreamOverrideHost, upstreamHosts } from "../lib/higress";

let mode = "pass";
let name = "";
let cluster = "";
let calloutPath = "/";
let timeoutMs: u32 = 1000;

function increment(key: string): void {
  for (let attempt = 0; attempt < 10; attempt++) {
    const got = get_shared_data(key);
    let n: i32 = 0;
    let cas: u32 = 0;
    if (got.result == WasmResultValues.Ok && got.value !== null) {
      n = I32.parseInt(String.UTF8.decode(got.value!));
      cas = got.cas;
    }
    if (set_shared_data(key, String.UTF8.encode((n + 1).toString()), cas) == WasmResultValues.Ok) return;
  }
}

class TestRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new TestStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    mode = configValue(config, "mode", "pass");
    name = configValue(config, "name", "");
    cluster = configValue(config, "cluster", "");
    calloutPath = configValue(config, "path", "/");
    timeoutMs = <u32>I32.parseInt(configValue(config, "timeout", "1000"));
    return true;
  }
}

function calloutDone(origin: BaseContext, headers: u32, bodySize: usize, _trailers: u32): void {
  if (headers == 0) {
    sendLocal(502, "callout_failed", String.UTF8.encode("callout failed\n"), []);
    return;
  }
  const status = stream_context.headers.http_callback.get(":status");
  const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, <u32>bodySize));
  stream_context.headers.request.add("x-callout-status", status);
  stream_context.headers.request.add("x-callout-body", body);
  continue_request();
}

class TestStream extends Context {
  chunks: i32 = 0;
  constructor(context_id: u32, root: TestRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    if (name.length > 0) {
      const seen = requestHeader("x-seen-by");
      stream_context.headers.request.replace("x-seen-by", seen === null ? name : seen + "," + name);
    }
    const deny = requestHeader("x-deny");
    if (deny !== null && (deny == "*" || deny == name)) {
      sendLocal(403, "denied", String.UTF8.encode("denied by " + name + "\n"), []);
      return FilterHeadersStatusValues.StopIteration;
    }
    if (mode == "body-rewrite") {
      stream_context.headers.request.remove("content-length");
    } else if (mode == "lb") {
      const hosts = upstreamHosts();
      let summary = "";
      for (let i = 0; i < hosts.length; i += 2) {
        const health = hosts[i + 1].includes("\"health_status\":\"Healthy\"") ? "Healthy" : "other";
        summary += (summary.length > 0 ? "," : "") + hosts[i] + "=" + health;
      }
      stream_context.headers.request.add("x-upstream-hosts", summary);
      const target = requestHeader("x-override-host");
      if (target !== null) setUpstreamOverrideHost(target);
    } else if (mode == "callout") {
      const headers: Headers = [];
      headers.push(makeHeaderPair(":method", "GET"));
      headers.push(makeHeaderPair(":path", calloutPath));
      headers.push(makeHeaderPair(":authority", "callout.local"));
      const root = this.root_context;
      const r = root.httpCall(cluster, headers, new ArrayBuffer(0), [], timeoutMs, this, calloutDone);
      if (r != WasmResultValues.Ok) {
        sendLocal(500, "callout_dispatch_failed", String.UTF8.encode("callout dispatch failed: " + r.toString() + "\n"), []);
      }
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }
  onRequestBody(size: usize, eos: bool): FilterDataStatusValues {
    if (mode != "body-rewrite") return FilterDataStatusValues.Continue;
    if (!eos) return FilterDataStatusValues.StopIterationAndBuffer;
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>size));
    const out = String.UTF8.encode(body.toUpperCase());
    set_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, <u32>size, out);
    return FilterDataStatusValues.Continue;
  }
  onResponseHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    if (name.length > 0) stream_context.headers.response.add("x-encoded-by", name);
    if (mode == "body-rewrite") stream_context.headers.response.remove("content-length");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseBody(size: usize, eos: bool): FilterDataStatusValues {
    if (mode == "sse") {
      if (size > 0) this.chunks++;
      return FilterDataStatusValues.Continue;
    }
    if (mode != "body-rewrite") return FilterDataStatusValues.Continue;
    if (!eos) return FilterDataStatusValues.StopIterationAndBuffer;
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, <u32>size));
    set_buffer_bytes(BufferTypeValues.HttpResponseBody, 0, <u32>size, String.UTF8.encode("[" + body + "]"));
    return FilterDataStatusValues.Continue;
  }
  onLog(): void {
    increment("on_log");
    if (mode == "sse") set_shared_data("sse_chunks", String.UTF8.encode(this.chunks.toString()), 0);
  }
}

registerRootContext((context_id: u32) => new TestRoot(context_id), "http_test");
