/**
 * The real documents the structure-aware targets mutate: the shipped example bootstraps, the bootstrap the HTTP
 * tests use, and what the real Higress /config_dump in /work/shared/vectors/ holds (its bootstrap, its clusters,
 * its listeners and its Wasm filter configs). Loaded once per process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, pluginPath } from '../support/plugins';
import type { Json } from './json-mutate';

const VECTORS = '/work/shared/vectors';

type Obj = { [k: string]: Json };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function higressDump(): Obj[] {
  const file = join(VECTORS, 'higress_config_dump.json');
  if (!existsSync(file)) return [];
  const dump = JSON.parse(readFileSync(file, 'utf8')) as { configs: Obj[] };
  return dump.configs;
}

function withoutType(o: Json): Json {
  if (!isObj(o)) return o;
  const { '@type': _t, ...rest } = o;
  return rest;
}

/** A bootstrap with one listener running `filters` (wasm filters first, then the router) and one static cluster. */
export function bootstrapWithFilters(filters: Json[]): Obj {
  return {
    node: { id: 'fuzz', cluster: 'fuzz' },
    static_resources: {
      listeners: [{
        name: 'ingress',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'ingress_http',
              route_config: { name: 'local', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '5s' } }] }] },
              http_filters: [
                ...filters,
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
            },
          }],
        }],
      }],
      clusters: [{
        name: 'app', type: 'STATIC', connect_timeout: '1s',
        load_assignment: { cluster_name: 'app', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 1 } } } }] }] },
      }],
    },
  };
}

/** A wasm filter as the HTTP tests write it, on a real plugin file. */
export function wasmFilter(configuration: string): Json {
  return {
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: 'fuzz',
        root_id: 'fuzz',
        vm_config: { vm_id: 'fuzz', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath('noop-min') } } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: configuration },
        failure_policy: 'FAIL_CLOSED',
      },
    },
  };
}

let bootstraps: Json[] | undefined;

/** Whole bootstraps. */
export function bootstrapSeeds(): Json[] {
  if (bootstraps) return bootstraps;
  const out: Json[] = [];
  for (const f of ['examples/static/bootstrap.yaml', 'examples/xds/bootstrap.yaml']) {
    const p = join(REPO_ROOT, f);
    if (existsSync(p)) out.push(parseYaml(readFileSync(p, 'utf8')) as Json);
  }
  out.push(bootstrapWithFilters([wasmFilter('{"a":1}')]));
  const configs = higressDump();
  const boot = configs.find((c) => String(c['@type']).endsWith('BootstrapConfigDump'));
  if (isObj(boot?.['bootstrap'])) out.push(boot['bootstrap']);
  const clusters = configs.find((c) => String(c['@type']).endsWith('ClustersConfigDump'));
  if (clusters) {
    const list = [...((clusters['static_clusters'] as Obj[] | undefined) ?? []), ...((clusters['dynamic_active_clusters'] as Obj[] | undefined) ?? [])]
      .map((c) => withoutType(c['cluster'] ?? null))
      // An EDS cluster needs dynamic CDS/EDS; keep the others as static clusters.
      .filter((c) => isObj(c) && c['type'] !== 'EDS');
    out.push({ node: { id: 'fuzz', cluster: 'fuzz' }, static_resources: { clusters: list } });
  }
  bootstraps = out;
  return out;
}

/** The Wasm filter configs (envoy.extensions.filters.http.wasm.v3.Wasm, as http_filters entries) of the Higress dump, plus ours. */
export function wasmFilterSeeds(): Json[] {
  const out: Json[] = [wasmFilter('{"block_urls":["/admin"]}'), wasmFilter('')];
  const ecds = higressDump().find((c) => String(c['@type']).endsWith('EcdsConfigDump'));
  for (const f of (ecds?.['ecds_filters'] as Obj[] | undefined) ?? []) {
    const tc = f['ecds_filter'];
    if (!isObj(tc) || !isObj(tc['typed_config'])) continue;
    const cfg = tc['typed_config'];
    if (!String(cfg['@type']).endsWith('filters.http.wasm.v3.Wasm')) continue;
    // The dump's plugins are files on a Higress pod; point them at a real module here.
    const copy = structuredClone(cfg) as Obj;
    const vm = (copy['config'] as Obj | undefined)?.['vm_config'] as Obj | undefined;
    if (vm) vm['code'] = { local: { filename: pluginPath('noop-min') } };
    out.push({ name: String(tc['name'] ?? 'wasm'), typed_config: copy });
  }
  return out;
}
