import { PeerType, StreamType } from '../abi/enums';
import type { NetworkContext, RootContext } from '../abi/contexts';
import type { PluginVm } from '../abi/plugin-vm';
import type { PropertyValue } from '../abi/properties';
import { NetworkStreamState, type NetworkStreamHost } from '../abi/stream-state';
import type { Plugin } from '../runtime/plugin';

/** Envoy's Network::FilterStatus as a filter returns it. */
export type NetworkFilterStatus = 'continue' | 'stop';

/** What a filter's callback did with the connection's data: its decision and the data as it left it. */
export interface NetworkDataResult {
  readonly status: NetworkFilterStatus;
  readonly data: Buffer;
}

/** The connection driving the filter; called after the guest call that asked, never inside it. */
export interface NetworkFilterCallbacks {
  /** proxy_continue_stream(Downstream | Upstream) from this filter. */
  continueStream(filter: WasmNetworkFilter, type: StreamType.Downstream | StreamType.Upstream): void;
  /** proxy_close_stream, or a failed VM under fail-closed: close the connection (Envoy: FlushWrite). */
  closeConnection(filter: WasmNetworkFilter, reason: string): void;
  property(path: readonly string[]): PropertyValue | undefined;
}

function status(result: number | undefined): NetworkFilterStatus {
  // cpp-host: 0 is Continue, anything else StopIteration.
  return result === undefined || result === 0 ? 'continue' : 'stop';
}

/**
 * One envoy.filters.network.wasm filter on one connection: its NetworkContext and the L4 callbacks in Envoy's
 * order and semantics (extensions/common/wasm/context.cc and cpp-host context.cc):
 *
 * - proxy_on_context_create then proxy_on_new_connection when the connection opens;
 * - proxy_on_downstream_data / proxy_on_upstream_data with buffer 2 / 3 holding the connection's data not yet
 *   passed on (the driver keeps it while the filter stops), readable and writable in the callback and while
 *   stopped; 0 is Continue, anything else StopIteration;
 * - end of stream from the upstream also delivers proxy_on_upstream_connection_close(UNKNOWN) (Envoy reports the
 *   upstream's close only this way);
 * - the downstream close delivers proxy_on_downstream_connection_close(LOCAL | REMOTE), then proxy_on_done,
 *   proxy_on_log, proxy_on_delete (Envoy's onCloseTCP order; on_done's result does not defer the delete).
 *
 * A failed VM (CHECK_FAIL_NETWORK): under FAIL_OPEN the filter passes everything through; otherwise the first
 * callback after the failure closes the connection and every callback stops iteration.
 */
export class WasmNetworkFilter implements NetworkStreamHost {
  readonly state: NetworkStreamState;
  private ctx: NetworkContext | undefined;
  private streamFailed = false;
  private finished = false;
  /** A guest callback of this filter is running: continue_stream then applies to its result. */
  private inCallback = false;
  /**
   * continue_stream asked during this filter's own callback: its after-call action runs before the callback's
   * result is seen, so it is applied to that result instead of being lost.
   */
  private continueInCallback: StreamType.Downstream | StreamType.Upstream | undefined;

  private constructor(
    readonly name: string,
    private readonly vm: PluginVm | undefined,
    private readonly root: RootContext | undefined,
    private readonly failOpen: boolean,
    private readonly callbacks: NetworkFilterCallbacks,
  ) {
    this.state = new NetworkStreamState(this);
  }

  /**
   * The filter for a new connection; undefined when its plugin has failed and fails open (Envoy adds no filter
   * then). A failed plugin that fails closed gets a filter with no VM, which closes the connection.
   */
  static create(plugin: Plugin, callbacks: NetworkFilterCallbacks): WasmNetworkFilter | undefined {
    const got = plugin.acquireVm();
    const failOpen = plugin.failurePolicy === 'FAIL_OPEN';
    if (!got && failOpen) return undefined;
    return new WasmNetworkFilter(plugin.config.name, got?.vm, got?.root, failOpen, callbacks);
  }

  /** The context id (for tests and logs); undefined before proxy_on_context_create. */
  get contextId(): number | undefined {
    return this.ctx?.id;
  }

  // ---- NetworkStreamHost (the host functions call these after the guest call) ----

  continueStream(type: StreamType): void {
    if (type !== StreamType.Downstream && type !== StreamType.Upstream) return;
    if (this.inCallback) {
      this.continueInCallback = type;
      return;
    }
    this.callbacks.continueStream(this, type);
  }

  closeStream(type: StreamType): void {
    // Envoy closes the whole downstream connection for both: the upstream one goes with it.
    this.callbacks.closeConnection(this, type === StreamType.Upstream ? 'wasm_upstream_close' : 'wasm_downstream_close');
  }

  property(path: readonly string[]): PropertyValue | undefined {
    return this.callbacks.property(path);
  }

  // ---- callbacks ----

  /** CHECK_FAIL_NETWORK: undefined when the VM is usable, else what the callback returns. */
  private failure(): NetworkFilterStatus | undefined {
    if (this.vm && !this.vm.failed) return undefined;
    if (this.failOpen) return 'continue';
    if (!this.streamFailed) {
      this.streamFailed = true;
      this.callbacks.closeConnection(this, 'wasm_fail_stream');
    }
    return 'stop';
  }

  private call(direction: StreamType.Downstream | StreamType.Upstream | undefined, name: 'proxy_on_new_connection' | 'proxy_on_downstream_data' | 'proxy_on_upstream_data', a0: number, a1?: number, a2?: number): NetworkFilterStatus {
    const failed = this.failure();
    if (failed) return failed;
    this.inCallback = true;
    this.continueInCallback = undefined;
    let result: number | undefined;
    try {
      result = this.vm!.callGuest(this.ctx, name, a0, a1, a2);
    } finally {
      this.inCallback = false;
    }
    const s = this.failure() ?? status(result);
    const asked = this.continueInCallback;
    this.continueInCallback = undefined;
    if (asked !== undefined) {
      // A continue naming this callback's direction (or Downstream, which the Go SDK's ContinueTcpStream always
      // names) resumes this very callback; one naming the other direction resumes that one once this returns.
      if (asked === direction || asked === StreamType.Downstream || direction === undefined) {
        if (s === 'stop' && !this.streamFailed) return 'continue';
      } else {
        queueMicrotask(() => this.callbacks.continueStream(this, asked));
      }
    }
    return s;
  }

  newConnection(): NetworkFilterStatus {
    const failed = this.failure();
    if (failed) return failed;
    const vm = this.vm!;
    this.ctx = vm.createNetworkContext(this.root!, this.state);
    vm.callGuest(this.root, 'proxy_on_context_create', this.ctx.id, this.root!.id);
    return this.call(undefined, 'proxy_on_new_connection', this.ctx.id);
  }

  /** `data`: every byte from the downstream not yet passed on. Returns the data as the plugin left it. */
  downstreamData(data: Buffer, endOfStream: boolean): NetworkDataResult {
    if (!this.ctx) return { status: this.failure() ?? 'continue', data };
    this.state.downstreamData = data;
    const s = this.call(StreamType.Downstream, 'proxy_on_downstream_data', this.ctx.id, data.length, endOfStream ? 1 : 0);
    const out = this.state.downstreamData ?? data;
    // Envoy drops its reference to the buffer once the filter continues.
    if (s === 'continue') this.state.downstreamData = undefined;
    return { status: s, data: out };
  }

  upstreamData(data: Buffer, endOfStream: boolean): NetworkDataResult {
    if (!this.ctx) return { status: this.failure() ?? 'continue', data };
    this.state.upstreamData = data;
    const s = this.call(StreamType.Upstream, 'proxy_on_upstream_data', this.ctx.id, data.length, endOfStream ? 1 : 0);
    const out = this.state.upstreamData ?? data;
    if (s === 'continue') this.state.upstreamData = undefined;
    if (endOfStream) this.upstreamConnectionClose(PeerType.Unknown);
    return { status: s, data: out };
  }

  /** Data the filter holds while stopped, as it may have rewritten it since (from a tick or a callout reply). */
  heldData(direction: 'downstream' | 'upstream'): Buffer | undefined {
    return direction === 'downstream' ? this.state.downstreamData : this.state.upstreamData;
  }

  /** The driver passed the held data on (continue_stream): the buffer is no longer the filter's. */
  release(direction: 'downstream' | 'upstream'): void {
    if (direction === 'downstream') this.state.downstreamData = undefined;
    else this.state.upstreamData = undefined;
  }

  private upstreamConnectionClose(peer: PeerType): void {
    if (!this.ctx || this.finished || !this.vm || this.vm.failed) return;
    this.vm.callGuest(this.ctx, 'proxy_on_upstream_connection_close', this.ctx.id, peer);
  }

  /** The downstream connection closed: the close callback, then the context's end (done, log, delete). */
  downstreamConnectionClose(peer: PeerType.Local | PeerType.Remote): void {
    if (!this.ctx || this.finished) return;
    const vm = this.vm!;
    const ctx = this.ctx;
    vm.callGuest(ctx, 'proxy_on_downstream_connection_close', ctx.id, peer);
    this.finished = true;
    this.state.downstreamData = undefined;
    this.state.upstreamData = undefined;
    vm.callGuest(ctx, 'proxy_on_done', ctx.id);
    vm.callGuest(ctx, 'proxy_on_log', ctx.id);
    vm.callGuest(ctx, 'proxy_on_delete', ctx.id);
    vm.deleteContext(ctx);
  }
}
