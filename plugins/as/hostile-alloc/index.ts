// An allocation bomb written the way a leaking plugin is: for a request with `x-bomb` it keeps 1 MiB buffers,
// each written through, in a global list until the runtime cannot grow memory (AssemblyScript then aborts: a
// trap). A non-empty plugin configuration sets it off in proxy_on_configure instead. Other requests continue.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context } from "@gcoredev/proxy-wasm-sdk-as/assembly";

const kept: ArrayBuffer[] = [];

function bomb(): void {
  for (;;) {
    const chunk = new ArrayBuffer(1 << 20);
    memory.fill(changetype<usize>(chunk), 0x5a, 1 << 20); // resident, not just reserved
    kept.push(chunk);
  }
}

class BombRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new BombStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    if (size > 0) bomb();
    return true;
  }
}

class BombStream extends Context {
  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    if (stream_context.headers.request.get("x-bomb") != "") bomb();
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => new BombRoot(context_id), "hostile-alloc");
