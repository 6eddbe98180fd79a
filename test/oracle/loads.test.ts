// Every plugin the project builds (build/plugins/*.wasm and build/plugins/go/*.wasm, whatever is there when the
// test runs: Go plugins are being added), each alone in a filter chain: does each side load it, and does a
// request through it get the same answer? Plugins with Higress's ABI marker or Higress-only imports cannot
// run in stock Envoy: they are skipped here (sidecar-only) and named in the skip reason.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { assertExplained, higressOnly, Oracle, type OracleCluster, type OracleRequest } from './harness';

interface PluginCase {
  readonly rootId?: string;
  readonly configuration?: string;
  readonly requests?: readonly OracleRequest[];
  readonly clusters?: readonly OracleCluster[];
}

/** What a known plugin needs; anything else gets an empty root id and configuration and one GET. */
const KNOWN: Readonly<Record<string, PluginCase>> = {
  'add-header': { rootId: 'add_header', configuration: 'loads' },
  noop: { rootId: 'noop' },
  'worker-probe': { rootId: 'worker_probe', requests: [{ path: '/one' }, { path: '/two', headers: { 'x-read': 'requests' } }] },
  'go/up-body': { configuration: 'aaa=b', requests: [{ method: 'POST', path: '/body', body: 'xaaay' }] },
  'go/up-headers': { requests: [{ path: '/ok' }, { path: '/deny' }] },
  trap: { requests: [{ path: '/no-trap' }] },
  'abi-0-1-0': { configuration: 'zero-one-zero' },
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

function plugins(): string[] {
  const dir = join(REPO_ROOT, 'build', 'plugins');
  const names = (sub: string): string[] =>
    existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).filter((f) => f.endsWith('.wasm')).map((f) => (sub ? `${sub}/` : '') + f.slice(0, -5)) : [];
  return [...names(''), ...names('go')].sort();
}

describe('oracle: every project plugin loads (or not) alike', () => {
  const all = plugins();
  it('the project plugins are built', () => {
    if (all.length === 0) throw new Error(`no plugins in ${join(REPO_ROOT, 'build', 'plugins')}: run \`make plugins\` first`);
  });
  for (const plugin of all) {
    const sidecarOnly = higressOnly(join(REPO_ROOT, 'build', 'plugins', `${plugin}.wasm`));
    it(plugin, { skip: sidecarOnly ? `sidecar-only: ${sidecarOnly}` : false }, async (t) => {
      const c = KNOWN[plugin] ?? {};
      const name = plugin.replace('/', '-');
      const r = await Oracle.attempt({
        name: `loads-${name}`,
        filters: [{ plugin, name, rootId: c.rootId ?? '', configuration: c.configuration ?? '' }],
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
          const { diffs } = await r.oracle.exchange(`${i}`, req);
          assertExplained(diffs.map((d) => ({ ...d, case: `loads/${plugin}` })), (m) => t.diagnostic(m));
        }
        assertExplained((await r.oracle.logDiffs()).map((d) => ({ ...d, case: `loads/${plugin}` })), (m) => t.diagnostic(m));
      } finally {
        await r.oracle.close();
      }
    });
  }
});
