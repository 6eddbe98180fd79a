// Test plugin for the requirements note's variant: proxy_dispatch_redis_call with a callback table index and
// proxy_get_redis_call_response. Same request protocol as redis-echo (x-redis-cmd -> local 200 with the reply).
// `x-redis-callback: bogus` passes an invalid table index (expect -1 and a local 500).
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues } from "@gcoredev/proxy-wasm-sdk-as/assembly";
import {
  configValue, log, pluginConfiguration, proxy_dispatch_redis_call, proxy_get_redis_call_response,
  proxy_set_effective_context, redisInitFromConfig, requestHeader, respCommand, sendLocal, splitArgs, utf8, ptrOf, lenOf,
} from "../lib/higress";

let cluster = "";
const pendingStreams = new Map<i32, u32>();

function onRedisReply(token: i32, status: i32, size: i32): void {
  let body = new ArrayBuffer(0);
  if (status == 0 && size > 0) {
    const ptr = proxy_get_redis_call_response(0, size);
    if (ptr == -1) {
      log(4, "proxy_get_redis_call_response returned -1");
    } else {
      body = new ArrayBuffer(size);
      memory.copy(changetype<usize>(body), <usize>ptr, <usize>size);
    }
  }
  if (!pendingStreams.has(token)) {
    log(2, "late variant reply token=" + token.toString());
    return;
  }
  const stream = pendingStreams.get(token);
  pendingStreams.delete(token);
  proxy_set_effective_context(stream);
  sendLocal(200, "redis_reply", body, [
    ["x-redis-status", status.toString()], ["x-redis-token", token.toString()], ["x-redis-size", size.toString()],
  ]);
}

class VariantRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new VariantStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    cluster = configValue(config, "cluster", "");
    const status = redisInitFromConfig(config, cluster);
    log(2, "redis_init status=" + status.toString());
    return true;
  }
}

class VariantStream extends Context {
  constructor(context_id: u32, root: VariantRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    const cmd = requestHeader("x-redis-cmd");
    if (cmd === null) return FilterHeadersStatusValues.Continue;
    const query = respCommand(splitArgs(cmd));
    const c = utf8(cluster);
    const callback = requestHeader("x-redis-callback") === "bogus" ? <u32>99999 : <u32>onRedisReply.index;
    const token = proxy_dispatch_redis_call(ptrOf(c), lenOf(c), changetype<usize>(query), query.byteLength, callback);
    if (token < 0) {
      sendLocal(500, "redis_dispatch_failed", String.UTF8.encode("dispatch returned " + token.toString()), [["x-redis-dispatch", token.toString()]]);
      return FilterHeadersStatusValues.StopIteration;
    }
    pendingStreams.set(token, this.context_id);
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32) => new VariantRoot(context_id), "redis_variant");
