/**
 * Plugin configuration handling in the host: the Wasm HTTP filter config of a listener (src/http/listener-config.ts
 * through loadSidecarConfig, as `run -c` reads a bootstrap) and Higress/Istio WasmPlugin resources
 * (src/config/wasm-plugin-resource.ts through readWasmPlugins, as `run --wasm-plugin` reads them). Seeds are the
 * Higress dump's six Wasm filter configs, ours, and the shipped WasmPlugin examples, mutated as documents (plus
 * the code URL forms a resource may carry). Oracles: a ConfigError naming where, or a config; never another error.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../../src/common/errors';
import { loadSidecarConfig } from '../../../src/http/listener-config';
import { readWasmPlugins } from '../../../src/config/wasm-plugin-resource';
import { loadEnvoyProtos } from '../../../src/xds/protos';
import { REPO_ROOT, pluginPath } from '../../support/plugins';
import { onlyTyped, OracleFailure, type FuzzTarget } from '../harness';
import { mutateJson, mutationsArb, yamlText, type Json } from '../json-mutate';
import { bootstrapWithFilters, wasmFilterSeeds } from '../seeds';

export type PluginConfigInput =
  | { readonly kind: 'filter'; readonly bootstrap: Json }
  | { readonly kind: 'wasm-plugin'; readonly yaml: string };

let dir: string | undefined;
let counter = 0;
function tempFile(ext: string, text: string): string {
  dir ??= mkdtempSync(join(tmpdir(), 'pws-fuzz-'));
  const file = join(dir, `input-${counter++ % 4}${ext}`);
  writeFileSync(file, text);
  return file;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function check(input: PluginConfigInput): void {
  if (input.kind === 'filter') {
    let text: string;
    try {
      text = JSON.stringify(input.bootstrap);
    } catch {
      return; // nested past what JSON.stringify can write: no file a user could hand the sidecar
    }
    const file = tempFile('.json', text);
    const err = onlyTyped(() => void loadSidecarConfig(file), [ConfigError], 'loadSidecarConfig');
    if (err && err.path === '' && isObject(input.bootstrap)) throw new OracleFailure(`ConfigError without a path: ${err.message}`);
    return;
  }
  const file = tempFile('.yaml', input.yaml);
  const err = onlyTyped(() => void readWasmPlugins([file], { labels: { app: 'fuzz' }, hostEnv: { HOME: '/root' } }), [ConfigError], 'readWasmPlugins');
  if (err && err.path === '') throw new OracleFailure(`ConfigError without a path: ${err.message}`);
}

/** The code URL forms a WasmPlugin may carry: a path, file:// (valid and not), and the schemes refused by name. */
const URLS = (): string[] => [
  pluginPath('noop-min'), pathToFileURL(pluginPath('noop-min')).href, 'file://remote-host/x.wasm', 'file:///no/such.wasm', 'file:', 'file://',
  'file:///%00', 'file:///%2F', 'oci://ghcr.io/x:1', 'http://x/y.wasm', 'HTTPS://x', '', 'relative/x.wasm', '\u0000',
];

let resources: Json[] | undefined;
function wasmPluginSeeds(): Json[] {
  if (resources) return resources;
  const exampleDir = join(REPO_ROOT, 'examples', 'wasm-plugin');
  resources = readdirSync(exampleDir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => {
      const doc = parseYaml(readFileSync(join(exampleDir, f), 'utf8')) as { spec?: { url?: string } };
      // The examples' code path is relative to examples/; the inputs live in a temp dir.
      if (doc.spec) doc.spec.url = pluginPath('noop-min');
      return [doc as Json];
    });
  return resources;
}

const filterInput = fc.tuple(fc.nat(), fc.nat(), mutationsArb).map(([i, j, ms]): PluginConfigInput => {
  const seeds = wasmFilterSeeds();
  // Mutate the filter list alone (two filters: a mutated one before a real one), then put it in a bootstrap.
  const filters = mutateJson([seeds[i % seeds.length]!, seeds[j % seeds.length]!], ms);
  return { kind: 'filter', bootstrap: bootstrapWithFilters(Array.isArray(filters) ? filters : [filters]) };
});

const resourceInput = fc.tuple(fc.nat(), mutationsArb, fc.option(fc.nat(), { freq: 3 })).map(([i, ms, url]): PluginConfigInput => {
  const seeds = wasmPluginSeeds();
  const doc = mutateJson(seeds[i % seeds.length]!, ms) as { spec?: Json } | Json;
  if (url !== null && isObject(doc) && isObject((doc as { spec?: Json }).spec)) {
    const urls = URLS();
    ((doc as { spec: Record<string, Json> }).spec)['url'] = urls[url % urls.length]!;
  }
  return { kind: 'wasm-plugin', yaml: yamlText(doc) };
});

export const pluginConfigTarget: FuzzTarget<PluginConfigInput> = {
  name: 'plugin-config',
  arbitrary: fc.oneof(filterInput, resourceInput),
  check,
  ciRuns: 150,
  setup: async () => void loadEnvoyProtos(),
  teardown: () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  },
  encode: (i) => i,
  decode: (j) => j as PluginConfigInput,
};
