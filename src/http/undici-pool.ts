import type * as undici from 'undici';

/**
 * undici's Pool and connector, required from their own modules: undici's index also loads fetch, WebSocket,
 * caches, mocks and proxy agents (101 modules, ~120 ms and ~8 MB per thread, so per worker), and the proxy uses
 * these two only. The types are undici's public ones; test/http/undici-pool.test.ts pins that these are the very
 * classes undici's index exports, so an undici upgrade that moves them fails there, not in production.
 */
export const Pool: typeof undici.Pool = require('undici/lib/dispatcher/pool') as typeof undici.Pool;
export type Pool = undici.Pool;
export const buildConnector: typeof undici.buildConnector = require('undici/lib/core/connect') as typeof undici.buildConnector;
// eslint-disable-next-line @typescript-eslint/no-namespace -- mirrors undici's own `buildConnector.BuildOptions`
export declare namespace buildConnector {
  type BuildOptions = undici.buildConnector.BuildOptions;
}
