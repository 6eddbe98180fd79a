/** Caps from cpp-host include/proxy-wasm/limits.h. */
export const MAX_MEMORY_BYTES = 1024 * 1024 * 1024;
export const MAX_RANDOM_GET_BYTES = 64 * 1024;
export const MAX_PAIRS_BYTES = 1024 * 1024;
export const MAX_PAIRS_COUNT = 1024;
