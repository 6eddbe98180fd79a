import { FilterDataStatus, FilterHeadersStatus, StreamType } from '../abi/enums';
import type { HttpContext, RootContext } from '../abi/contexts';
import type { HeaderPairs } from '../abi/pairs';
import { StreamState, type StreamHost } from '../abi/stream-state';
import type { PluginVm } from '../abi/plugin-vm';
import { headersPauseIsStopIteration } from '../wasm/abi-version';

/** Envoy's filter statuses, as the data plane acts on them. `failed`: the VM trapped in this callback. */
export type HeadersAction = 'continue' | 'stop_iteration' | 'stop_all' | 'failed';
export type DataAction = 'continue' | 'stop_buffer' | 'stop_watermark' | 'stop_no_buffer' | 'failed';
export type TrailersAction = 'continue' | 'stop' | 'failed';

export interface HttpStreamOptions {
  /** PluginConfig.allow_on_headers_stop_iteration: PAUSE from headers means StopIteration even before 0_2_100. */
  readonly allowOnHeadersStopIteration?: boolean;
}

/**
 * One HTTP stream through one plugin: calls the guest's stream callbacks in Envoy's order and converts their
 * return values as cpp-host does (context.cc convertVmCallResultTo*). The driver (data plane or test kit)
 * owns buffering and iteration; this class only exposes the plugin's decisions.
 */
export class HttpStream {
  readonly state: StreamState;
  private ctx: HttpContext | undefined;
  private logged = false;
  private finished = false;
  private readonly stopIterationOnPause: boolean;
  private readonly legacyHeaders: boolean;
  /**
   * The last 'stop_all' was StopAllIterationAndBuffer: data held meanwhile counts against the buffer limit
   * (413/500 past it). A watermark StopAll (what a 0.2.x PAUSE becomes) streams instead and never errors.
   */
  stopAllBuffers = false;

  constructor(
    readonly vm: PluginVm,
    readonly root: RootContext,
    host: StreamHost,
    options: HttpStreamOptions = {},
  ) {
    this.state = new StreamState(host);
    this.stopIterationOnPause = headersPauseIsStopIteration(vm.abi) || options.allowOnHeadersStopIteration === true;
    this.legacyHeaders = vm.abi === '0.1.0';
  }

  /** The stream's context id (created lazily on first use, as Envoy does). */
  get contextId(): number {
    return this.context().id;
  }

  /**
   * The stream's context, ready for a stream callback: a local reply sent earlier from a callout or Redis
   * callback must not force this callback's result to stop (cpp-host resets the flag around every VM call).
   */
  private context(): HttpContext {
    if (this.ctx) this.ctx.stopNextIteration = false;
    if (!this.ctx) {
      this.ctx = this.vm.createHttpContext(this.root, this.state);
      this.vm.callGuest(this.root, 'proxy_on_context_create', this.ctx.id, this.root.id);
    }
    return this.ctx;
  }

  private headersAction(result: number | undefined, ctx: HttpContext): HeadersAction {
    if (result === undefined) return this.vm.failed ? 'failed' : 'continue';
    this.stopAllBuffers = false;
    if (ctx.stopNextIteration) {
      ctx.stopNextIteration = false;
      return 'stop_all';
    }
    switch (result) {
      case FilterHeadersStatus.Continue:
      case FilterHeadersStatus.ContinueAndEndStream:
        return 'continue';
      case FilterHeadersStatus.StopIteration:
        return this.stopIterationOnPause ? 'stop_iteration' : 'stop_all';
      case FilterHeadersStatus.StopAllIterationAndBuffer:
        this.stopAllBuffers = true;
        return 'stop_all';
      default:
        return 'stop_all';
    }
  }

  private dataAction(result: number | undefined, ctx: HttpContext): DataAction {
    if (result === undefined) return this.vm.failed ? 'failed' : 'continue';
    if (ctx.stopNextIteration) {
      ctx.stopNextIteration = false;
      return 'stop_no_buffer';
    }
    switch (result) {
      case FilterDataStatus.Continue: return 'continue';
      case FilterDataStatus.StopIterationAndBuffer: return 'stop_buffer';
      case FilterDataStatus.StopIterationAndWatermark: return 'stop_watermark';
      default: return 'stop_no_buffer';
    }
  }

  private trailersAction(result: number | undefined, ctx: HttpContext): TrailersAction {
    if (result === undefined) return this.vm.failed ? 'failed' : 'continue';
    if (ctx.stopNextIteration) {
      ctx.stopNextIteration = false;
      return 'stop';
    }
    return result === 0 ? 'continue' : 'stop';
  }

  /** 0.1.0 headers callbacks take no end_of_stream; called with the arguments spelled out (no array per call). */
  private callHeaders(ctx: HttpContext, name: 'proxy_on_request_headers' | 'proxy_on_response_headers', count: number, endOfStream: boolean): number | undefined {
    return this.legacyHeaders ? this.vm.callGuest(ctx, name, ctx.id, count) : this.vm.callGuest(ctx, name, ctx.id, count, endOfStream ? 1 : 0);
  }

  /** `headers` is mutated in place by the plugin; keep the reference. */
  requestHeaders(headers: HeaderPairs, endOfStream: boolean): HeadersAction {
    const ctx = this.context();
    this.state.requestHeaders = headers;
    const r = this.callHeaders(ctx, 'proxy_on_request_headers', headers.length, endOfStream);
    return this.headersAction(r, ctx);
  }

  /** `body` is the chunk, or everything buffered so far when the driver buffers; read back `state.requestBody`. */
  requestBody(body: Buffer, endOfStream: boolean): DataAction {
    const ctx = this.context();
    this.state.requestBody = body;
    const r = this.vm.callGuest(ctx, 'proxy_on_request_body', ctx.id, body.length, endOfStream ? 1 : 0);
    return this.dataAction(r, ctx);
  }

  requestTrailers(trailers: HeaderPairs): TrailersAction {
    const ctx = this.context();
    this.state.requestTrailers = trailers;
    const r = this.vm.callGuest(ctx, 'proxy_on_request_trailers', ctx.id, trailers.length);
    return this.trailersAction(r, ctx);
  }

  responseHeaders(headers: HeaderPairs, endOfStream: boolean): HeadersAction {
    const ctx = this.context();
    this.state.responseHeaders = headers;
    const r = this.callHeaders(ctx, 'proxy_on_response_headers', headers.length, endOfStream);
    return this.headersAction(r, ctx);
  }

  responseBody(body: Buffer, endOfStream: boolean): DataAction {
    const ctx = this.context();
    this.state.responseBody = body;
    const r = this.vm.callGuest(ctx, 'proxy_on_response_body', ctx.id, body.length, endOfStream ? 1 : 0);
    return this.dataAction(r, ctx);
  }

  responseTrailers(trailers: HeaderPairs): TrailersAction {
    const ctx = this.context();
    this.state.responseTrailers = trailers;
    const r = this.vm.callGuest(ctx, 'proxy_on_response_trailers', ctx.id, trailers.length);
    return this.trailersAction(r, ctx);
  }

  /**
   * End of stream, in current Envoy's order: proxy_on_log, proxy_on_done, proxy_on_delete (on_delete waits
   * for proxy_done if on_done returned false). Headers seen on the stream are readable during on_log.
   * Idempotent; also the path for a client that disconnected.
   */
  finish(access?: { requestHeaders?: HeaderPairs; responseHeaders?: HeaderPairs }): void {
    this.finishWith(access?.requestHeaders, access?.responseHeaders);
  }

  /** finish() with the headers as arguments (the data plane's form: no object per stream). */
  finishWith(requestHeaders: HeaderPairs | undefined, responseHeaders: HeaderPairs | undefined): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.ctx) return; // the plugin never saw this stream
    const ctx = this.ctx;
    if (requestHeaders) this.state.requestHeaders = requestHeaders;
    if (responseHeaders) this.state.responseHeaders = responseHeaders;
    if (!this.logged) {
      this.logged = true;
      this.vm.callGuest(ctx, 'proxy_on_log', ctx.id);
    }
    const done = this.vm.callGuest(ctx, 'proxy_on_done', ctx.id);
    if (done === 0 && !this.vm.failed) {
      ctx.pendingDone = true; // proxy_done() will delete it
      return;
    }
    this.vm.callGuest(ctx, 'proxy_on_delete', ctx.id);
    this.vm.deleteContext(ctx);
  }

  get isFinished(): boolean {
    return this.finished;
  }
}

export { StreamType };
