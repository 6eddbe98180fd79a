import type { HeaderPairs } from '../common/headers';

/** What a gRPC callout reports back, in order: initial metadata, messages, then close (with trailers). */
export interface GrpcCalloutHandlers {
  onInitialMetadata(metadata: HeaderPairs): void;
  onMessage(message: Buffer): void;
  /** Exactly once, last: grpc-status code (0 OK), its message, and the trailing metadata. */
  onClose(code: number, message: string, trailers: HeaderPairs): void;
}

export interface GrpcCalloutRequest {
  readonly cluster: string;
  /** Fully qualified service, e.g. `envoy.service.auth.v3.Authorization`. */
  readonly service: string;
  readonly method: string;
  readonly metadata: HeaderPairs;
  /** 0: no deadline. */
  readonly timeoutMs: number;
}

export type GrpcCalloutOutcome<T> =
  | ({ readonly status: 'ok' } & T)
  | { readonly status: 'unknown_cluster' }
  | { readonly status: 'internal_failure'; readonly reason: string };

export interface GrpcCall {
  /** Stops the call; no further handler runs (Envoy: proxy_grpc_cancel). */
  cancel(): void;
}

export interface GrpcStreamCall extends GrpcCall {
  send(message: Buffer, endOfStream: boolean): void;
  /** Half-close from the plugin side (proxy_grpc_close on a stream). */
  close(): void;
}

/**
 * proxy_grpc_call / proxy_grpc_stream's backend (http/ implements it over @grpc/grpc-js with raw bytes).
 * Handlers always run asynchronously.
 */
export interface GrpcCalloutService {
  unary(request: GrpcCalloutRequest, message: Buffer, handlers: GrpcCalloutHandlers): GrpcCalloutOutcome<{ readonly call: GrpcCall }>;
  stream(request: GrpcCalloutRequest, handlers: GrpcCalloutHandlers): GrpcCalloutOutcome<{ readonly call: GrpcStreamCall }>;
}
