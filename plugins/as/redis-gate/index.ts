// The bundled example plugin: replay protection in the manner of Higress's replay-protection plugin.
// Each request must carry `x-nonce`; the plugin runs `set <prefix>:<nonce> 1 nx ex <ttl>` through the Higress
// Redis ABI while the request waits. `+OK` (first use) lets it through with `x-replay-check: passed`; a nil
// reply (seen before) gets a local 429; a missing nonce 400; Redis unreachable 503.
// Configuration (`key=value` lines): cluster, username, password, timeout (ms), ttl (s), prefix.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@gcoredev/proxy-wasm-sdk-as/assembly";
import {
  configValue, getBuffer, lastToken, log, pluginConfiguration, proxy_continue_stream, proxy_set_effective_context,
  redisCall, redisInitFromConfig, requestHeader, respCommand, sendLocal, BUFFER_REDIS_CALL_RESPONSE,
} from "../lib/higress";

let cluster = "";
let ttl = "60";
let prefix = "replay-protection";
const pendingStreams = new Map<u32, u32>();

class GateRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new GateStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    const initName = configValue(config, "cluster", "");
    // Calls use the bare cluster name, init carries the parameters (as wasm-go does).
    const q = initName.indexOf("?");
    cluster = q < 0 ? initName : initName.substring(0, q);
    ttl = configValue(config, "ttl", "60");
    prefix = configValue(config, "prefix", "replay-protection");
    const status = redisInitFromConfig(config, initName);
    if (status != 0) log(4, "redis init failed: status=" + status.toString());
    return true;
  }
}

class GateStream extends Context {
  constructor(context_id: u32, root: GateRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    const nonce = requestHeader("x-nonce");
    if (nonce === null || nonce.length == 0) {
      sendLocal(400, "replay-protection.missing_nonce", String.UTF8.encode("missing x-nonce header\n"), []);
      return FilterHeadersStatusValues.StopIteration;
    }
    const status = redisCall(cluster, respCommand(["set", prefix + ":" + nonce, "1", "nx", "ex", ttl]));
    if (status != 0) {
      sendLocal(503, "replay-protection.redis_call_failed", String.UTF8.encode("redis call failed: status " + status.toString() + "\n"), []);
      return FilterHeadersStatusValues.StopIteration;
    }
    pendingStreams.set(lastToken, this.context_id);
    return FilterHeadersStatusValues.StopIteration;
  }
  onResponseHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-replay-check", "passed");
    return FilterHeadersStatusValues.Continue;
  }
}

export function proxy_on_redis_call_response(_root: u32, token: u32, status: u32, size: u32): void {
  if (!pendingStreams.has(token)) return;
  const stream = pendingStreams.get(token);
  pendingStreams.delete(token);
  proxy_set_effective_context(stream);
  if (status != 0) {
    sendLocal(503, "replay-protection.redis_unavailable", String.UTF8.encode("redis unavailable\n"), []);
    return;
  }
  const reply = Uint8Array.wrap(getBuffer(BUFFER_REDIS_CALL_RESPONSE, 0, size));
  if (reply.length > 0 && reply[0] == 0x2b /* '+' */) {
    proxy_continue_stream(0);
  } else if (reply.length > 0 && reply[0] == 0x24 /* '$' (nil bulk) */) {
    sendLocal(429, "replay-protection.replay", String.UTF8.encode("replay detected\n"), [["x-replay-check", "rejected"]]);
  } else {
    sendLocal(503, "replay-protection.redis_error", reply.buffer, []);
  }
}

registerRootContext((context_id: u32) => new GateRoot(context_id), "redis_gate");
