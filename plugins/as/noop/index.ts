// A plugin that does nothing: every callback takes the SDK's default (Continue). The benchmark's baseline.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import { RootContext, Context, registerRootContext } from "@gcoredev/proxy-wasm-sdk-as/assembly";

class NoopRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Context(context_id, this);
  }
}

registerRootContext((context_id: u32) => new NoopRoot(context_id), "noop");
