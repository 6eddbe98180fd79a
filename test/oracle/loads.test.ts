// Every plugin the project builds (build/plugins/*.wasm and build/plugins/go/*.wasm, whatever is there when the
// test runs: Go plugins are being added), each alone in a filter chain: does each side load it, and does a
// request through it get the same answer? Plugins importing Higress-only functions (Redis, upstream hosts,
// inject) cannot run in stock Envoy: they are skipped (sidecar-only, named in the skip reason). Plugins whose only
// Higress trait is the 0_2_100 ABI marker (Higress wasm-go plugins) run on both sides as a copy re-marked 0.2.1:
// the same module and ABI on both hosts (stock Envoy refuses the 0_2_100 marker itself).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { assertExplained, HIGRESS_MARKER, higressOnly, Oracle, withRenamedExport, type OracleCluster, type OracleRequest } from './harness';

interface PluginCase {
  readonly rootId?: string;
  readonly configuration?: string;
  readonly requests?: readonly OracleRequest[];
  readonly clusters?: readonly OracleCluster[];
}

/** What a known plugin needs; anything else gets an empty root id and configuration and one GET. */
/**
 * Plugins that hang real Envoy by design: they loop for ever where Envoy has no deadline (the sidecar stops them,
 * test/watchdog shows it), so Envoy never starts and there is nothing to compare.
 */
const HANGS_ENVOY: Readonly<Record<string, string>> = {
  'hostile-loop-configure': 'loops for ever in proxy_on_configure: Envoy has no deadline and never starts (test/watchdog covers the sidecar)',
  'hostile-loop-start': 'loops for ever in _start: Envoy has no deadline and never starts (test/watchdog covers the sidecar)',
};

const KNOWN: Readonly<Record<string, PluginCase>> = {
  'add-header': { rootId: 'add_header', configuration: 'loads' },
  noop: { rootId: 'noop' },
  'worker-probe': { rootId: 'worker_probe', requests: [{ path: '/one' }, { path: '/two', headers: { 'x-read': 'requests' } }] },
  'go/up-body': { configuration: 'aaa=b', requests: [{ method: 'POST', path: '/body', body: 'xaaay' }] },
  'go/up-headers': { requests: [{ path: '/ok' }, { path: '/deny' }] },
  trap: { requests: [{ path: '/no-trap' }] },
  'abi-0-1-0': { configuration: 'zero-one-zero' },
  'go/host-reroute': { configuration: JSON.stringify({ header: 'x-target', value: 'b' }) },
  'go/host-inject': { configuration: JSON.stringify({ body: '{"injected":true}' }) },
  'go/host-buffer': { configuration: JSON.stringify({ request_limit: 0, response_limit: 0 }), requests: [{ method: 'POST', path: '/buf', body: 'buffer me' }] },
  'go/sdk-sse': { requests: [{ method: 'POST', path: '/sse', body: 'shout' }] },
  'go/host-attrs': {
    configuration: JSON.stringify({
      properties: [['request', 'path'], ['request', 'method'], ['request', 'scheme'], ['request', 'protocol'], ['response', 'code'], ['response', 'code_details'], ['plugin_name'], ['plugin_root_id'], ['cluster_name'], ['route_name']],
      deny_header: 'x-deny',
    }),
    requests: [{ path: '/attrs?q=1' }, { path: '/denied', headers: { 'x-deny': '1' } }],
  },
  'grpc-callout': {
    clusters: [
      { name: 'upstream' },
      {
        name: 'grpc-backend',
        unreachable: true,
        extra: {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        },
      },
    ],
  },
};

/**
 * Stock Envoy needs ~20 s (2 cores) to start with one Higress wasm-go module, so by default only these run
 * re-marked on both sides; ORACLE_HIGRESS_GO=all runs every one in build/plugins/go (the upstream-SDK Go plugins
 * always run: they start in a few seconds).
 */
const HIGRESS_GO_SAMPLE = ['go/add-header', 'go/host-attrs', 'go/sdk-sse'];
const HIGRESS_GO_ALL = process.env['ORACLE_HIGRESS_GO'] === 'all';

function plugins(): string[] {
  const dir = join(REPO_ROOT, 'build', 'plugins');
  const names = (sub: string): string[] =>
    existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).filter((f) => f.endsWith('.wasm')).map((f) => (sub ? `${sub}/` : '') + f.slice(0, -5)) : [];
  return [...names(''), ...names('go')].sort();
}

// Top-level tests, not one suite: each plugin is its own test under the runner's --test-timeout.
{
  const all = plugins();
  test('oracle loads: the project plugins are built', () => {
    if (all.length === 0) throw new Error(`no plugins in ${join(REPO_ROOT, 'build', 'plugins')}: run \`make plugins\` first`);
  });
  for (const plugin of all) {
    const file = join(REPO_ROOT, 'build', 'plugins', `${plugin}.wasm`);
    const higress = higressOnly(file);
    // The Higress ABI marker alone (a wasm-go plugin without Redis & co.): both sides run a copy marked 0.2.1.
    const as021 = higress.marker && higress.imports.length === 0;
    const skip = HANGS_ENVOY[plugin] ?? (higress.imports.length > 0
      ? `sidecar-only: imports Higress-only ${higress.imports.join(', ')}`
      : as021 && !HIGRESS_GO_ALL && !HIGRESS_GO_SAMPLE.includes(plugin)
        ? 'a Higress wasm-go plugin costs Envoy ~20 s to start on 2 cores: run with ORACLE_HIGRESS_GO=all to compare it too'
        : false);
    const label = `oracle loads: ${plugin}${as021 ? ' (re-marked 0.2.1)' : ''}`;
    test(label, { skip }, async (t) => {
      const c = KNOWN[plugin] ?? {};
      const name = plugin.replace('/', '-');
      const loaded = as021 ? withRenamedExport(file, HIGRESS_MARKER, 'proxy_abi_version_0_2_1', `as-0-2-1/${name}`) : plugin;
      const r = await Oracle.attempt({
        name: `loads-${name}`,
        filters: [{ plugin: loaded, name, rootId: c.rootId ?? '', configuration: c.configuration ?? '' }],
        clusters: c.clusters ?? [{ name: 'upstream' }],
      });
      const firstLine = (s: string): string => s.split('\n').find((l) => l.includes('wasm') && /error|critical|fail/i.test(l))?.trim() ?? s.split('\n')[0]!;
      const outcome = (s: string): string => (s === 'started' ? s : `refused (${firstLine(s)})`);
      if (!r.oracle) {
        const both = r.envoy !== 'started' && r.sidecar !== 'started';
        if (!both) assertExplained([{ case: `loads/${plugin}`, field: 'load', envoy: outcome(r.envoy), sidecar: outcome(r.sidecar) }], (m) => t.diagnostic(m));
        else t.diagnostic(`both refuse it: envoy ${outcome(r.envoy)}; sidecar ${outcome(r.sidecar)}`);
        return;
      }
      try {
        const requests = c.requests ?? [{ path: '/loads' }];
        for (const [i, req] of requests.entries()) {
          // A bound on each request: a plugin that holds a stream forever (both sides alike) must not cost 20 s.
          const { diffs } = await r.oracle.exchange(`${i}`, { timeoutMs: 3000, ...req });
          assertExplained(diffs.map((d) => ({ ...d, case: `loads/${plugin}` })), (m) => t.diagnostic(m));
        }
        assertExplained((await r.oracle.logDiffs()).map((d) => ({ ...d, case: `loads/${plugin}` })), (m) => t.diagnostic(m));
      } finally {
        await r.oracle.close();
      }
    });
  }
}
