import { ContextDeletedError } from '../common/errors';
import type { RedisOwner } from '../services/redis';
import type { HttpCalloutResponse } from '../services/http-callout';
import type { GrpcCall, GrpcStreamCall } from '../services/grpc-callout';
import type { HeaderPairs } from './pairs';
import type { PluginVm } from './plugin-vm';
import type { NetworkStreamState, StreamState } from './stream-state';

/** Identity and configuration of one plugin (Envoy PluginConfig) inside a VM. */
export interface PluginIdentity {
  readonly name: string;
  readonly rootId: string;
  readonly configuration: Buffer;
}

abstract class ContextBase {
  constructor(
    readonly vm: PluginVm,
    readonly id: number,
  ) {}
  abstract readonly root: RootContext;
}

/** The callout reply the current callback may read (buffers 4/9, maps 6/7, get_status). */
export interface CalloutReplyState {
  redisReply?: Buffer;
  httpResponse?: HttpCalloutResponse;
  grpcMessage?: Buffer;
  grpcInitialMetadata?: HeaderPairs;
  grpcTrailingMetadata?: HeaderPairs;
  status?: { code: number; message: string };
  foreignArgs?: Buffer;
}

/** One plugin's root context: configuration, tick timer, and the callouts it owns. */
export class RootContext extends ContextBase implements RedisOwner {
  readonly root = this;
  tickPeriodMs = 0;
  tickTimer: NodeJS.Timeout | undefined;
  /**
   * Bumped when the root's callouts are cancelled (root deleted, VM failed or closed): a Redis reply for a call
   * made in an earlier epoch is dropped. The calls themselves are cancelled by RedisService.release(root); no
   * per-call registry is kept (a Map set/delete per call kept every in-flight call alive into the old generation).
   */
  redisEpoch = 0;
  readonly pendingHttp = new Map<number, { cancel: () => void }>();
  readonly pendingGrpc = new Map<number, { readonly call: GrpcCall | GrpcStreamCall; readonly stream: boolean }>();
  readonly queueRegistrations: Array<{ dispose(): void }> = [];
  /** Valid only during the callback that delivers it (Envoy clears it in an after-VM-call action). */
  reply: CalloutReplyState = {};
  /** Waiting for proxy_done after proxy_on_done returned false. */
  pendingDone = false;
  constructor(
    vm: PluginVm,
    id: number,
    readonly plugin: PluginIdentity,
  ) {
    super(vm, id);
  }

  get label(): string {
    return `${this.plugin.name}/${this.plugin.rootId}`;
  }
}

/**
 * A stream context's per-stream state, reachable until the context is deleted (PluginVm.deleteContext). Deleted,
 * the context keeps nothing of its stream. Measured: under bursty load (bench/profile/burst-gc.ts) a sidecar with
 * the .wat no-op went into a state where each scavenge promoted 2.8-3.2 MB (5 ms pauses, a mark-compact every few
 * scavenges; also with --no-allocation-site-pretenuring), and dropping the deleted context's stream took it to
 * 5-54 KB. Inferred: dead old-space objects are scavenge roots, and V8 links a rehashed Map table to its successor
 * (for live iterators), so tables of `vm.contexts` promoted during a pause kept every context they held, and with
 * it the whole stream (headers, filter chain, router, response), alive into the old generation.
 */
abstract class StreamContextBase<S> extends ContextBase {
  private attached: S | undefined;
  constructor(vm: PluginVm, id: number, state: S) {
    super(vm, id);
    this.attached = state;
  }
  protected state(): S {
    if (this.attached === undefined) throw new ContextDeletedError(this.id);
    return this.attached;
  }
  /** Drops the stream's state (the context was deleted); a later use throws ContextDeletedError. */
  detach(): void {
    this.attached = undefined;
  }
}

/** One HTTP stream of a plugin. */
export class HttpContext extends StreamContextBase<StreamState> {
  /** A local response was sent during the current callback: its result is forced to stop (Envoy stopNextIteration). */
  stopNextIteration = false;
  pendingDone = false;
  constructor(
    vm: PluginVm,
    id: number,
    readonly root: RootContext,
    stream: StreamState,
  ) {
    super(vm, id, stream);
  }
  get stream(): StreamState {
    return this.state();
  }
}

/** One TCP connection of a plugin (envoy.filters.network.wasm). */
export class NetworkContext extends StreamContextBase<NetworkStreamState> {
  pendingDone = false;
  constructor(
    vm: PluginVm,
    id: number,
    readonly root: RootContext,
    connection: NetworkStreamState,
  ) {
    super(vm, id, connection);
  }
  get connection(): NetworkStreamState {
    return this.state();
  }
}

export type Context = RootContext | HttpContext | NetworkContext;
