/**
 * `proxy-wasm-sidecar/testing`: the plugin test kit. Load a compiled plugin (any language), drive HTTP streams,
 * and read back what it did; Redis and HTTP callouts go to real servers or to recorders the test answers.
 */
export { HostEmulator, EmulatedStream } from './host-emulator';
export type { EmulatorLog, HostCallRecord, HostEmulatorOptions, StreamOptions } from './host-emulator';
export { RecordedHttpCallouts } from './recorded-callouts';
export type { RecordedHttpCall } from './recorded-callouts';
export { RedisClusters } from './redis-clusters';
export { XdsTestServer } from './xds-control-plane';
export type { PluginCode, PluginConfig } from '../runtime/plugin';
export type { HeaderPairs } from '../abi/pairs';
export type { PropertyValue } from '../abi/properties';
export { LogLevel, WasmResult } from '../abi/enums';
