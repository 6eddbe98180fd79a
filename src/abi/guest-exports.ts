import type { AbiVersion } from '../wasm/abi-version';

/**
 * The callbacks a module may export (spec §5 plus cpp-host's extra lookups and Higress's Redis callback),
 * declared once. `minParams` lets 0.1.0 header callbacks (2 params) share the name with 0.2.x (3 params).
 */
export const GUEST_EXPORTS = [
  '_initialize', '_start', 'main', 'malloc', 'proxy_on_memory_allocate',
  'proxy_on_context_create', 'proxy_on_vm_start', 'proxy_on_configure', 'proxy_validate_configuration', 'proxy_on_tick',
  'proxy_on_new_connection', 'proxy_on_downstream_data', 'proxy_on_upstream_data',
  'proxy_on_downstream_connection_close', 'proxy_on_upstream_connection_close',
  'proxy_on_request_headers', 'proxy_on_request_body', 'proxy_on_request_trailers', 'proxy_on_request_metadata',
  'proxy_on_response_headers', 'proxy_on_response_body', 'proxy_on_response_trailers', 'proxy_on_response_metadata',
  'proxy_on_http_call_response', 'proxy_on_grpc_receive_initial_metadata', 'proxy_on_grpc_receive_trailing_metadata',
  'proxy_on_grpc_receive', 'proxy_on_grpc_close', 'proxy_on_queue_ready', 'proxy_on_foreign_function',
  'proxy_on_redis_call_response', 'proxy_on_log', 'proxy_on_done', 'proxy_on_delete',
] as const;

export type GuestExportName = (typeof GUEST_EXPORTS)[number];
export type GuestFunction = (...args: number[]) => number | undefined;
export type GuestExports = Partial<Record<GuestExportName, GuestFunction>>;

/** Higress registers proxy_on_redis_call_response for 0_2_0, 0_2_1 and 0_2_100 modules. */
function availableIn(name: GuestExportName, abi: AbiVersion): boolean {
  if (name === 'proxy_on_redis_call_response' || name === 'proxy_on_foreign_function') return abi !== '0.1.0';
  return true;
}

export function readGuestExports(instance: WebAssembly.Instance, abi: AbiVersion): GuestExports {
  const out: GuestExports = {};
  for (const name of GUEST_EXPORTS) {
    const f = instance.exports[name];
    if (typeof f === 'function' && availableIn(name, abi)) out[name] = f as GuestFunction;
  }
  return out;
}
