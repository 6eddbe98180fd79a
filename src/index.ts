/**
 * `proxy-wasm-sidecar`: the sidecar as a library (start it from a bootstrap file, stop it) and its typed errors.
 * The plugin test kit is `proxy-wasm-sidecar/testing`.
 */
export { Sidecar } from './main';
export type { SidecarOptions } from './main';
export { ConfigError, PluginLoadError, PluginStartError, SidecarError } from './common/errors';
export { quickBootstrap } from './config/quick-bootstrap';
export type { QuickCluster, QuickPlugin, QuickStart } from './config/quick-bootstrap';
export { readWasmPlugins } from './config/wasm-plugin-resource';
