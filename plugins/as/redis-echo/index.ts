// Test plugin for the Higress Redis import set (proxy_redis_init / proxy_redis_call / proxy_on_redis_call_response).
// Configuration (plugin configuration, `key=value` lines): cluster (init string, may carry ?params), call_cluster
// (bare name for calls; defaults to cluster), username, password, timeout (ms).
// Per request: header `x-redis-cmd: set k v ex 10` is sent as a lower-cased RESP array; the stream pauses and the
// reply comes back as a local 200 whose body is the exact reply bytes, with x-redis-status/-token/-size headers.
// `x-redis-cluster` overrides the call's cluster. `x-redis-on-log: <cmd>` issues a call from proxy_on_log whose
// reply is only logged (a call that outlives its stream).
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues } from "@gcoredev/proxy-wasm-sdk-as/assembly";
import {
  configValue, getBuffer, lastToken, log, pluginConfiguration, proxy_set_effective_context, redisCall, redisInitFromConfig,
  requestHeader, respCommand, sendLocal, splitArgs, BUFFER_REDIS_CALL_RESPONSE,
} from "../lib/higress";

let callCluster = "";
const pendingStreams = new Map<u32, u32>(); // token -> stream context id

class EchoRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new EchoStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    const cluster = configValue(config, "cluster", "");
    callCluster = configValue(config, "call_cluster", cluster);
    const status = redisInitFromConfig(config, cluster);
    log(2, "redis_init status=" + status.toString());
    return true;
  }
}

class EchoStream extends Context {
  constructor(context_id: u32, root: EchoRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    const cmd = requestHeader("x-redis-cmd");
    if (cmd === null) return FilterHeadersStatusValues.Continue;
    const clusterOverride = requestHeader("x-redis-cluster");
    const cluster = clusterOverride === null ? callCluster : clusterOverride!;
    const status = redisCall(cluster, respCommand(splitArgs(cmd)));
    if (status != 0) {
      sendLocal(500, "redis_call_failed", String.UTF8.encode("redis_call status=" + status.toString()),
        [["x-redis-call-status", status.toString()]]);
      return FilterHeadersStatusValues.StopIteration;
    }
    pendingStreams.set(lastToken, this.context_id);
    return FilterHeadersStatusValues.StopIteration;
  }
  onLog(): void {
    const cmd = requestHeader("x-redis-on-log");
    if (cmd === null) return;
    const status = redisCall(callCluster, respCommand(splitArgs(cmd)));
    log(2, "on_log redis_call status=" + status.toString() + " token=" + lastToken.toString());
  }
}

export function proxy_on_redis_call_response(root_id: u32, token: u32, status: u32, size: u32): void {
  const body = status == 0 ? getBuffer(BUFFER_REDIS_CALL_RESPONSE, 0, size) : new ArrayBuffer(0);
  if (!pendingStreams.has(token)) {
    log(2, "late reply root=" + root_id.toString() + " token=" + token.toString() + " status=" + status.toString() +
      " size=" + size.toString() + " read=" + body.byteLength.toString());
    return;
  }
  const stream = pendingStreams.get(token);
  pendingStreams.delete(token);
  proxy_set_effective_context(stream);
  sendLocal(200, "redis_reply", body, [
    ["x-redis-status", status.toString()], ["x-redis-token", token.toString()],
    ["x-redis-size", size.toString()], ["x-redis-root", root_id.toString()],
  ]);
}

registerRootContext((context_id: u32) => new EchoRoot(context_id), "redis_echo");
