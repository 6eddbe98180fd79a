import type { StreamType } from './enums';
import type { HeaderPairs } from './pairs';
import type { PropertyValue } from './properties';

/** proxy_send_local_response as the plugin asked for it. */
export interface LocalResponse {
  readonly statusCode: number;
  readonly details: string;
  readonly body: Buffer;
  readonly headers: HeaderPairs;
  /** -1: none. */
  readonly grpcStatus: number;
}

/**
 * What drives an HTTP stream (the data plane's filter, or the test kit). The runtime calls these after the
 * guest call that asked for them has returned (Envoy's after-VM-call actions), never from inside it.
 */
export interface StreamHost {
  continueStream(type: StreamType): void;
  closeStream(type: StreamType): void;
  sendLocalResponse(response: LocalResponse): void;
  /** Built-in stream properties (`request.path`, `source.address`, `route_name`, ...); undefined = NOT_FOUND. */
  property(path: readonly string[]): PropertyValue | undefined;
  /** A property written by the plugin (`clear_route_cache`, `set_decoder_buffer_limit`, ...), after it is stored. */
  propertyWritten?(path: string, value: Buffer): void;
  /**
   * The plugin changed the request headers (add/replace/remove/set pairs): Envoy's Wasm context clears the
   * route cache then, unless this plugin wrote `clear_route_cache=off` (Higress).
   */
  requestHeadersModified?(): void;
  /** proxy_clear_route_cache / the `clear_route_cache` foreign function (same Higress opt-out). */
  clearRouteCache?(): void;
  /**
   * Higress injectEncodedDataToFilterChain: `data` (and end of stream) goes to the encoder filters after this one,
   * releasing this filter's response headers first. `onHeader`: the `_on_header` form, run on the next event-loop
   * turn. False when there is no response at this filter yet (Envoy has no headers to release then).
   */
  injectEncodedData?(data: Buffer, endOfStream: boolean, onHeader: boolean): boolean;
  /** Higress proxy_get_upstream_hosts: the hosts of this request's cluster as (`ip:port`, JSON) pairs. */
  upstreamHosts?(): ReadonlyArray<readonly [string, string]>;
  /** Higress proxy_set_upstream_override_host: send this request to that endpoint, bypassing the LB. */
  setUpstreamOverrideHost?(address: string): void;
}

/**
 * The parts of one HTTP stream a plugin can reach. The driver sets a field while it is accessible and clears it
 * (undefined) when Envoy would not expose it; header arrays are mutated in place so the driver's reference stays
 * current.
 */
export class StreamState {
  requestHeaders: HeaderPairs | undefined;
  requestTrailers: HeaderPairs | undefined;
  responseHeaders: HeaderPairs | undefined;
  responseTrailers: HeaderPairs | undefined;
  requestBody: Buffer | undefined;
  responseBody: Buffer | undefined;
  /** Set by proxy_set_property on this stream (Envoy filter state `wasm.<path>`), keyed by the raw path. */
  readonly properties = new Map<string, Buffer>();
  localResponse: LocalResponse | undefined;
  constructor(readonly host: StreamHost) {}
}

/**
 * What drives one TCP connection of a network filter (the L4 filter chain, or a test kit). Like StreamHost, the
 * runtime calls these after the guest call that asked for them has returned.
 */
export interface NetworkStreamHost {
  /** proxy_continue_stream(Downstream | Upstream): resume the direction the plugin paused. */
  continueStream(type: StreamType): void;
  /** proxy_close_stream(Downstream | Upstream): close the connection (Envoy closes the whole connection). */
  closeStream(type: StreamType): void;
  /** Built-in connection properties (`source.address`, `connection.*`, `upstream.*`, ...); undefined = NOT_FOUND. */
  property(path: readonly string[]): PropertyValue | undefined;
}

/**
 * The parts of one TCP connection a plugin can reach: the bytes of the current proxy_on_downstream_data /
 * proxy_on_upstream_data callback (buffers 2 and 3), undefined outside it. The driver sets and reads them back.
 */
export class NetworkStreamState {
  downstreamData: Buffer | undefined;
  upstreamData: Buffer | undefined;
  readonly properties = new Map<string, Buffer>();
  constructor(readonly host: NetworkStreamHost) {}
}
