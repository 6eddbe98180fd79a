/**
 * Typed errors with stable codes (undici's pattern). Tests assert on `code`, never on the message.
 * Only abi/ maps these to WasmResult or Redis status; only http/ and admin/ map them to HTTP status.
 */
export class SidecarError extends Error {
  override name = 'SidecarError';
  readonly code: string = 'PWS_ERR';
}

export class ConfigError extends SidecarError {
  override name = 'ConfigError';
  override readonly code: string = 'PWS_ERR_CONFIG';
  /** Path of the offending field, e.g. `static_resources.clusters[0].name`. */
  constructor(message: string, readonly path: string = '', options?: ErrorOptions) {
    super(path ? `${path}: ${message}` : message, options);
  }
}

/** A stream context was used after it was deleted (its stream state is gone). */
export class ContextDeletedError extends SidecarError {
  override name = 'ContextDeletedError';
  override readonly code: string = 'PWS_ERR_CONTEXT_DELETED';
  constructor(readonly contextId: number) {
    super(`context ${contextId} was deleted`);
  }
}

export class PluginLoadError extends SidecarError {
  override name = 'PluginLoadError';
  override readonly code = 'PWS_ERR_PLUGIN_LOAD';
}

export class PluginStartError extends SidecarError {
  override name = 'PluginStartError';
  override readonly code = 'PWS_ERR_PLUGIN_START';
}

export class PluginTrapError extends SidecarError {
  override name = 'PluginTrapError';
  override readonly code = 'PWS_ERR_PLUGIN_TRAP';
}

export class UnknownClusterError extends SidecarError {
  override name = 'UnknownClusterError';
  override readonly code = 'PWS_ERR_UNKNOWN_CLUSTER';
}

export class NoHealthyHostError extends SidecarError {
  override name = 'NoHealthyHostError';
  override readonly code = 'PWS_ERR_NO_HEALTHY_HOST';
}

export class UnsupportedClusterError extends SidecarError {
  override name = 'UnsupportedClusterError';
  override readonly code = 'PWS_ERR_UNSUPPORTED_CLUSTER';
}

export class RedisTimeoutError extends SidecarError {
  override name = 'RedisTimeoutError';
  override readonly code = 'PWS_ERR_REDIS_TIMEOUT';
}

export class RedisConnectionError extends SidecarError {
  override name = 'RedisConnectionError';
  override readonly code = 'PWS_ERR_REDIS_CONNECTION';
}

export class RedisProtocolError extends SidecarError {
  override name = 'RedisProtocolError';
  override readonly code = 'PWS_ERR_REDIS_PROTOCOL';
}

export class ClientClosedError extends SidecarError {
  override name = 'ClientClosedError';
  override readonly code = 'PWS_ERR_CLOSED';
}

export class AdminError extends SidecarError {
  override name = 'AdminError';
  override readonly code = 'PWS_ERR_ADMIN';
}
