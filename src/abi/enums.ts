/**
 * Proxy-Wasm enumerations, declared once (spec abi-versions v0.1.0..v0.2.1, Higress proxy_wasm_enums.h).
 * Host functions, the runtime and the docs all import them from here.
 */

/** proxy_status_t / WasmResult. */
export const enum WasmResult {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  BadExpression = 5,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  ResultMismatch = 9,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
}

export const WASM_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'Ok', 1: 'NotFound', 2: 'BadArgument', 3: 'SerializationFailure', 4: 'ParseFailure', 5: 'BadExpression',
  6: 'InvalidMemoryAccess', 7: 'Empty', 8: 'CasMismatch', 9: 'ResultMismatch', 10: 'InternalFailure',
  11: 'BrokenConnection', 12: 'Unimplemented',
};

/** proxy_log_level_t. */
export const enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}
export const LOG_LEVEL_NAMES = ['trace', 'debug', 'info', 'warn', 'error', 'critical'] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

/** proxy_buffer_type_t; 9 is Higress's Redis reply. */
export const enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  CallData = 8,
  RedisCallResponse = 9,
}
export const MAX_BUFFER_TYPE = 9;

/** proxy_map_type_t. */
export const enum MapType {
  HttpRequestHeaders = 0,
  HttpRequestTrailers = 1,
  HttpResponseHeaders = 2,
  HttpResponseTrailers = 3,
  GrpcReceiveInitialMetadata = 4,
  GrpcReceiveTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}
export const MAX_MAP_TYPE = 7;

/** proxy_stream_type_t (0.2.0+). */
export const enum StreamType {
  HttpRequest = 0,
  HttpResponse = 1,
  Downstream = 2,
  Upstream = 3,
}

export const enum PeerType {
  Unknown = 0,
  Local = 1,
  Remote = 2,
}

/** proxy_metric_type_t. */
export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}

/** Envoy FilterHeadersStatus (the values 0_2_100 modules return as-is). */
export const enum FilterHeadersStatus {
  Continue = 0,
  StopIteration = 1,
  ContinueAndEndStream = 2,
  StopAllIterationAndBuffer = 3,
  StopAllIterationAndWatermark = 4,
}

/** Envoy FilterDataStatus. */
export const enum FilterDataStatus {
  Continue = 0,
  StopIterationAndBuffer = 1,
  StopIterationAndWatermark = 2,
  StopIterationNoBuffer = 3,
}

/** Envoy FilterTrailersStatus. */
export const enum FilterTrailersStatus {
  Continue = 0,
  StopIteration = 1,
}

/** Higress RedisStatus, the `status` of proxy_on_redis_call_response. */
export const enum RedisStatus {
  Ok = 0,
  NetworkError = 1,
}

/** Callout ids carry their kind in the low two bits (Higress cpp-host wasm.h, kCalloutIncrement = 4). */
export const enum CalloutKind {
  HttpCall = 0,
  GrpcCall = 1,
  GrpcStream = 2,
  RedisCall = 3,
}

/** WASI errno values used by the shim. */
export const enum WasiErrno {
  Success = 0,
  Badf = 8,
  Fault = 21,
  Inval = 28,
  Noent = 44,
  Nosys = 52,
  Notsup = 58,
  Notcapable = 76,
}

/** Envoy PluginConfig.failure_policy. */
export type FailurePolicy = 'FAIL_CLOSED' | 'FAIL_OPEN' | 'FAIL_RELOAD';
