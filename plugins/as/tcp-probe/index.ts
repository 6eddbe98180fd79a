// Test plugin for the L4 (network filter) callbacks. It logs every callback it receives ("cb <name> <args>") and
// acts on its configuration (`key=value` lines), each keyed by a marker looked for in the connection's data:
//   hold=<m>               downstream data containing <m> is held (Pause); the next tick continues it with
//                          proxy_continue_stream(Downstream) from the root context (set_effective_context)
//   hold_new_connection=1  proxy_on_new_connection pauses; the next tick continues it
//   wait_for=<m>           downstream data is held until it contains <m> (Pause; more data re-delivers all of it)
//   close_on=<m>           downstream data containing <m>: proxy_close_stream(Downstream)
//   close_upstream_on=<m>  upstream data containing <m>: proxy_close_stream(Upstream)
//   trap_on=<m>            downstream data containing <m>: the plugin traps (unreachable)
//   replace=<from>:<to>    every <from> in downstream data becomes <to> (set_buffer_bytes(2, 0, size))
//   prefix_upstream=<p>    <p> is prepended to each upstream data callback's data (set_buffer_bytes(3, 0, 0))
// At the downstream close it logs the connection's properties ("props ...").
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterStatusValues, get_buffer_bytes, set_buffer_bytes, get_property,
  set_tick_period_milliseconds, BufferTypeValues,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";
import { PeerTypeValues } from "@gcoredev/proxy-wasm-sdk-as/assembly/runtime";
import { configValue, log, pluginConfiguration, proxy_set_effective_context, proxy_continue_stream } from "../lib/higress";

@external("env", "proxy_close_stream")
declare function proxy_close_stream(stream_type: u32): u32;

const STREAM_DOWNSTREAM: u32 = 2;
const STREAM_UPSTREAM: u32 = 3;

let hold = "";
let holdNewConnection = false;
let waitFor = "";
let closeOn = "";
let closeUpstreamOn = "";
let trapOn = "";
let replaceFrom = "";
let replaceTo = "";
let prefixUpstream = "";
/** Contexts waiting for the next tick's continue. */
const held = new Array<u32>();

function info(message: string): void {
  log(2, message);
}

function has(data: string, marker: string): bool {
  return marker.length > 0 && data.indexOf(marker) >= 0;
}

function prop(path: string): string {
  const v = get_property(path);
  return v.byteLength == 0 ? "-" : String.UTF8.decode(v);
}

function propInt(path: string): string {
  const v = get_property(path);
  if (v.byteLength != 8) return "-";
  return load<i64>(changetype<usize>(v)).toString();
}

class ProbeRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new ProbeConnection(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    hold = configValue(config, "hold", "");
    holdNewConnection = configValue(config, "hold_new_connection", "") == "1";
    waitFor = configValue(config, "wait_for", "");
    closeOn = configValue(config, "close_on", "");
    closeUpstreamOn = configValue(config, "close_upstream_on", "");
    trapOn = configValue(config, "trap_on", "");
    const replace = configValue(config, "replace", "");
    const colon = replace.indexOf(":");
    if (colon > 0) {
      replaceFrom = replace.substring(0, colon);
      replaceTo = replace.substring(colon + 1);
    }
    prefixUpstream = configValue(config, "prefix_upstream", "");
    if (hold.length > 0 || holdNewConnection) set_tick_period_milliseconds(10);
    return true;
  }
  onTick(): void {
    for (let i = 0; i < held.length; i++) {
      info("tick continue " + held[i].toString());
      proxy_set_effective_context(held[i]);
      proxy_continue_stream(STREAM_DOWNSTREAM);
    }
    held.length = 0;
  }
}

class ProbeConnection extends Context {
  released: bool = false;
  constructor(context_id: u32, root: ProbeRoot) {
    super(context_id, root);
  }
  onNewConnection(): FilterStatusValues {
    info("cb new_connection");
    if (holdNewConnection) {
      held.push(this.context_id);
      return FilterStatusValues.StopIteration;
    }
    return FilterStatusValues.Continue;
  }
  onDownstreamData(size: usize, end: bool): FilterStatusValues {
    info("cb downstream_data " + size.toString() + " " + (end ? "1" : "0"));
    const bytes = get_buffer_bytes(BufferTypeValues.NetworkDownstreamData, 0, <u32>size);
    const data = String.UTF8.decode(bytes);
    if (has(data, trapOn)) unreachable();
    if (has(data, closeOn)) {
      proxy_close_stream(STREAM_DOWNSTREAM);
      return FilterStatusValues.StopIteration;
    }
    if (replaceFrom.length > 0 && has(data, replaceFrom)) {
      set_buffer_bytes(BufferTypeValues.NetworkDownstreamData, 0, <u32>size, String.UTF8.encode(data.replaceAll(replaceFrom, replaceTo)));
    }
    if (waitFor.length > 0 && !has(data, waitFor) && !end) return FilterStatusValues.StopIteration;
    if (has(data, hold) && !this.released) {
      this.released = true;
      held.push(this.context_id);
      return FilterStatusValues.StopIteration;
    }
    return FilterStatusValues.Continue;
  }
  onUpstreamData(size: usize, end: bool): FilterStatusValues {
    info("cb upstream_data " + size.toString() + " " + (end ? "1" : "0"));
    const data = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.NetworkUpstreamData, 0, <u32>size));
    if (has(data, closeUpstreamOn)) {
      proxy_close_stream(STREAM_UPSTREAM);
      return FilterStatusValues.StopIteration;
    }
    if (prefixUpstream.length > 0 && size > 0) {
      set_buffer_bytes(BufferTypeValues.NetworkUpstreamData, 0, 0, String.UTF8.encode(prefixUpstream));
    }
    return FilterStatusValues.Continue;
  }
  onDownstreamConnectionClose(t: PeerTypeValues): void {
    info("cb downstream_close " + t.toString());
    info("props source=" + prop("source.address") + " destination=" + prop("destination.address") + " upstream=" + prop("upstream.address")
      + " cluster=" + prop("cluster_name") + " connection_id=" + propInt("connection.id") + " plugin=" + prop("plugin_name")
      + " request_path=" + prop("request.path") + " tls=" + prop("connection.tls_version"));
  }
  onUpstreamConnectionClose(t: PeerTypeValues): void {
    info("cb upstream_close " + t.toString());
  }
  onDone(): bool {
    info("cb done");
    return true;
  }
  onLog(): void {
    info("cb log");
  }
  onDelete(): void {
    info("cb delete");
  }
}

registerRootContext((context_id: u32) => {
  return new ProbeRoot(context_id);
}, "tcp_probe");
