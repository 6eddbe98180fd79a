/** Caps from cpp-host include/proxy-wasm/limits.h. */
export const MAX_MEMORY_BYTES = 1024 * 1024 * 1024;
export const MAX_RANDOM_GET_BYTES = 64 * 1024;
export const MAX_PAIRS_BYTES = 1024 * 1024;
export const MAX_PAIRS_COUNT = 1024;

/**
 * Higress's set_global_max_requests_per_io_cycle (Envoy's http.max_requests_per_io_cycle): how many requests one
 * connection may start per event-loop turn; 0 = no cap. Process-wide, as in Higress, and the smallest value any
 * plugin set wins (wasm-go WithMaxRequestsPerIoCycle documents that).
 */
export const ioCycleLimit = {
  maxRequestsPerIoCycle: 0,
  set(max: number): void {
    if (max <= 0) return;
    this.maxRequestsPerIoCycle = this.maxRequestsPerIoCycle === 0 ? max : Math.min(this.maxRequestsPerIoCycle, max);
  },
};

/** Node's timers take at most 2^31-1 ms; a larger delay (a guest may pass any u32) fires after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerMs(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}

/** The most of one proxy_log message the host copies and logs (Envoy has no cap; a guest could pass 1 GiB). */
export const MAX_LOG_MESSAGE_BYTES = 1024 * 1024;
