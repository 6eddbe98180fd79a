// A test plugin for --concurrency N: shows which VM (worker) served a request and exercises shared data and
// shared queues across workers.
//   On configure: takes a VM number from shared data `vm_seq` (CAS increment, so numbers are unique across
//   every VM of this vm_id, in every worker) and registers shared queue `q-<vm number>`.
//   Each request: CAS-increments shared data `requests`; counts requests seen by this VM.
//   Request header `x-enqueue: <n>:<item>` resolves queue `q-<n>` and enqueues <item>.
//   Request header `x-read: <key>` reads shared data <key>.
//   Response headers: x-vm-number, x-vm-requests, x-source-address (property source.address),
//   x-enqueue-status (WasmResult of the enqueue), x-read-value.
//   On queue ready: dequeues every item and appends `<item>,` to shared data `received-<vm number>`.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context, get_shared_data,
  set_shared_data, WasmResultValues, register_shared_queue, resolve_shared_queue, enqueue_shared_queue,
  dequeue_shared_queue, get_property,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";
import { requestHeader } from "../lib/higress";

let vmNumber: i32 = 0;
let vmRequests: i32 = 0;

/** Appends `suffix` to shared data `key` (CAS); returns the new numeric value when `numeric`. */
function update(key: string, numeric: bool, suffix: string): i32 {
  for (let attempt = 0; attempt < 100; attempt++) {
    const got = get_shared_data(key);
    let current = "";
    // A missing key is created with a cas no entry has: a write to a missing key succeeds whatever its cas, and
    // one to a key another VM created meanwhile is CasMismatch (with cas 0 it would overwrite it: two workers
    // configuring at the same moment both took number 1).
    let cas: u32 = 0xffffffff;
    if (got.result == WasmResultValues.Ok && got.value !== null) {
      current = String.UTF8.decode(got.value!);
      cas = got.cas;
    }
    let next = "";
    let n: i32 = 0;
    if (numeric) {
      n = (current.length > 0 ? I32.parseInt(current) : 0) + 1;
      next = n.toString();
    } else {
      next = current + suffix;
    }
    if (set_shared_data(key, String.UTF8.encode(next), cas) == WasmResultValues.Ok) return n;
  }
  return -1;
}

class ProbeRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new ProbeStream(context_id, this);
  }
  onConfigure(size: u32): bool {
    vmNumber = update("vm_seq", true, "");
    register_shared_queue("q-" + vmNumber.toString());
    return true;
  }
  onQueueReady(token: u32): void {
    for (;;) {
      const r = dequeue_shared_queue(token);
      if (r.result != WasmResultValues.Ok || r.data === null) return;
      update("received-" + vmNumber.toString(), false, String.UTF8.decode(r.data!) + ",");
    }
  }
}

class ProbeStream extends Context {
  enqueueStatus: string = "";
  readValue: string = "";
  source: string = "";
  count: i32 = 0;
  constructor(context_id: u32, root: ProbeRoot) {
    super(context_id, root);
  }
  onRequestHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    update("requests", true, "");
    vmRequests++;
    this.count = vmRequests;
    this.source = String.UTF8.decode(get_property("source.address"));
    const enq = requestHeader("x-enqueue");
    if (enq !== null) {
      const colon = enq.indexOf(":");
      const q = resolve_shared_queue("", "q-" + enq.substring(0, colon));
      if (q.result != WasmResultValues.Ok) {
        this.enqueueStatus = "resolve:" + q.result.toString();
      } else {
        this.enqueueStatus = enqueue_shared_queue(q.token, String.UTF8.encode(enq.substring(colon + 1))).toString();
      }
    }
    const key = requestHeader("x-read");
    if (key !== null) {
      const got = get_shared_data(key);
      this.readValue = got.result == WasmResultValues.Ok && got.value !== null ? String.UTF8.decode(got.value!) : "";
    }
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(_n: u32, _eos: bool): FilterHeadersStatusValues {
    const h = stream_context.headers.response;
    h.add("x-vm-number", vmNumber.toString());
    h.add("x-vm-requests", this.count.toString());
    h.add("x-source-address", this.source);
    if (this.enqueueStatus.length > 0) h.add("x-enqueue-status", this.enqueueStatus);
    if (this.readValue.length > 0) h.add("x-read-value", this.readValue);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => new ProbeRoot(context_id), "worker_probe");
