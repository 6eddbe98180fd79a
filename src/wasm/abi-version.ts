import { PluginLoadError } from '../common/errors';

/** ABI versions a module can advertise with an exported `proxy_abi_version_*` marker. */
export type AbiVersion = '0.1.0' | '0.2.0' | '0.2.1' | '0.2.100';

export const ABI_MARKERS: Readonly<Record<string, AbiVersion>> = {
  proxy_abi_version_0_1_0: '0.1.0',
  proxy_abi_version_0_2_0: '0.2.0',
  proxy_abi_version_0_2_1: '0.2.1',
  proxy_abi_version_0_2_100: '0.2.100',
};

export const ALL_ABIS: readonly AbiVersion[] = ['0.1.0', '0.2.0', '0.2.1', '0.2.100'];

/** Reads the marker; a module without a known one is refused, naming what it does export. */
export function detectAbiVersion(module: WebAssembly.Module): AbiVersion {
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of names) {
    const version = Object.hasOwn(ABI_MARKERS, name) ? ABI_MARKERS[name] : undefined;
    if (version) return version;
  }
  const shown = names.length > 40 ? `${names.slice(0, 40).join(', ')}, ... (${names.length} in all)` : names.join(', ');
  throw new PluginLoadError(
    `missing or unknown Proxy-Wasm ABI version: the module exports no proxy_abi_version_0_1_0/0_2_0/0_2_1/0_2_100 marker (exports: ${shown || 'none'})`,
  );
}

/** Higress 0_2_100 returns Envoy's FilterHeadersStatus as-is; older ABIs map 1 (PAUSE) to StopAll. */
export function headersPauseIsStopIteration(abi: AbiVersion): boolean {
  return abi === '0.2.100';
}
