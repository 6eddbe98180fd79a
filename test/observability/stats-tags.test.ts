import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { http, statLines } from '../admin/helpers';
import { REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';

// stats_config end to end: the Go plugin vm-shared defines counters; Envoy's tag extraction (stats_tags with
// regex and fixed_value, default tags) shapes /stats/prometheus exactly as Envoy prints it, /stats keeps the
// full names, stats_matcher hides stats, and fields not implemented are refused with their path.

const VECTORS = [join(REPO_ROOT, '..', 'shared', 'vectors'), join(REPO_ROOT, '..', '..', 'shared', 'vectors'), '/work/shared/vectors'];
const HIGRESS_DUMP = VECTORS.map((d) => join(d, 'higress_config_dump.json')).find((f) => { try { readFileSync(f); return true; } catch { return false; } })!;

const tmp = new TempDir();
let up: Upstream;

before(async () => {
  up = await Upstream.start((_req, res) => res.end('ok'));
});
after(async () => {
  await up.close();
  tmp.cleanup();
});

function bootstrap(metrics: string[], extra: Record<string, unknown>): string {
  const doc = bootstrapJson({
    filters: [{ plugin: 'go/vm-shared', name: 'metrics', rootId: '', vmId: 'm', configuration: `metrics:${metrics.join(',')}` }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  doc['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  Object.assign(doc, extra);
  return tmp.write(`stats-${Math.random().toString(36).slice(2)}.json`, doc);
}

async function withSidecar(file: string, body: (admin: number, url: string) => Promise<void>): Promise<void> {
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000 });
  try {
    await body((await sidecar.admin!.start()).port, `http://127.0.0.1:${sidecar.publicListeners[0]!.port}`);
  } finally {
    await sidecar.stop();
  }
}

/** The sample lines of one Prometheus family, as printed. */
function samples(text: string, family: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${family}{`) || l.startsWith(`${family} `));
}

describe('stats_config tag extraction', () => {
  it('stats_tags regexes remove their first group and tag with their second; fixed_value tags every stat', async () => {
    const file = bootstrap(['name_value_foo_reporter_x', 'plain_total'], {
      stats_config: {
        stats_tags: [
          { tag_name: 'value', regex: '(_value_([a-z]+))' },
          { tag_name: 'reporter', regex: '(_reporter_([a-z]+))$' },
          { tag_name: 'mesh', fixed_value: 'm1' },
        ],
      },
    });
    await withSidecar(file, async (admin, url) => {
      assert.equal((await fetch(`${url}/x`)).status, 200);
      await until(async () => statLines((await http(admin, '/stats')).body).get('wasmcustom.name_value_foo_reporter_x') === '1', 10_000, 'the counter counted');
      const prom = (await http(admin, '/stats/prometheus')).body;
      // Envoy: tags in extraction order (extractors without a `^prefix.` first, in configuration order).
      assert.deepEqual(samples(prom, 'name'), ['name{value="foo",reporter="x",mesh="m1"} 1']);
      assert.deepEqual(samples(prom, 'plain_total'), ['plain_total{mesh="m1"} 1']);
      // Default tags still apply (use_all_default_tags defaults to true); prefixed extractors run after.
      assert.deepEqual(samples(prom, 'envoy_cluster_membership_total'), ['envoy_cluster_membership_total{mesh="m1",envoy_cluster_name="backend"} 1']);
      // The listener's own counters: Envoy's default http_conn_manager_prefix tag.
      assert.deepEqual(samples(prom, 'envoy_http_downstream_rq_http1_total'), ['envoy_http_downstream_rq_http1_total{mesh="m1",envoy_http_conn_manager_prefix="ingress_http"} 1']);
      assert.ok(!prom.includes('wasmcustom'), 'the custom namespace is stripped');
      // /stats keeps the full names, as Envoy does.
      const text = statLines((await http(admin, '/stats')).body);
      assert.equal(text.get('wasmcustom.name_value_foo_reporter_x'), '1');
      assert.equal(text.get('cluster.backend.membership_total'), '1');
      assert.equal(text.get('http.ingress_http.downstream_rq_http1_total'), '1');
    });
  });

  it("Higress's real stats_config (ai-statistics tags, its cluster_name regex, stats_matcher) as Envoy prints it", async () => {
    const dump = JSON.parse(readFileSync(HIGRESS_DUMP, 'utf8')) as { configs: Array<{ bootstrap?: { stats_config: Record<string, unknown> } }> };
    const statsConfig = dump.configs[0]!.bootstrap!.stats_config;
    const full = bootstrapJson({
      filters: [{ plugin: 'go/vm-shared', name: 'ai', rootId: '', vmId: 'm', configuration: 'metrics:route.r1.upstream.outbound|443||qwen.dns.model.qwen-max.consumer.none.metric.input_token' }],
      clusters: [{ name: 'backend', port: up.port }, { name: 'outbound|80||svc.ns.svc.cluster.local', port: up.port }],
    });
    full['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
    full['stats_config'] = statsConfig;
    await withSidecar(tmp.write('higress-stats.json', full), async (admin, url) => {
      assert.equal((await fetch(`${url}/x`)).status, 200);
      await until(async () => (await http(admin, '/stats/prometheus')).body.includes('route_upstream_model_consumer_metric_input_token{'), 10_000, 'the counter counted');
      const prom = (await http(admin, '/stats/prometheus')).body;
      assert.deepEqual(samples(prom, 'route_upstream_model_consumer_metric_input_token'), [
        'route_upstream_model_consumer_metric_input_token{ai_route="r1",ai_cluster="outbound|443||qwen.dns",ai_model="qwen-max",ai_consumer="none"} 1',
      ]);
      // use_all_default_tags: false, so only Higress's own cluster_name tag (no envoy. prefix).
      assert.deepEqual(samples(prom, 'envoy_cluster_membership_total').sort(), [
        'envoy_cluster_membership_total{cluster_name="backend"} 1',
        'envoy_cluster_membership_total{cluster_name="outbound|80||svc.ns.svc.cluster.local"} 1',
      ]);
    });
  });

  it('stats_matcher hides the stats it excludes everywhere', async () => {
    const file = bootstrap(['kept_total', 'hidden_total'], {
      stats_config: { stats_matcher: { exclusion_list: { patterns: [{ suffix: 'hidden_total' }, { prefix: 'cluster_manager.' }] } } },
    });
    await withSidecar(file, async (admin, url) => {
      assert.equal((await fetch(`${url}/x`)).status, 200);
      await until(async () => statLines((await http(admin, '/stats')).body).get('wasmcustom.kept_total') === '1', 10_000, 'the counter counted');
      const text = statLines((await http(admin, '/stats')).body);
      assert.equal(text.get('wasmcustom.hidden_total'), undefined);
      assert.equal([...text.keys()].filter((k) => k.startsWith('cluster_manager.')).length, 0);
      assert.ok(text.has('cluster.backend.membership_total'));
      const prom = (await http(admin, '/stats/prometheus')).body;
      assert.deepEqual(samples(prom, 'hidden_total'), []);
      assert.deepEqual(samples(prom, 'kept_total'), ['kept_total 1']);
    });
  });

  it('histogram_bucket_settings: the first matching setting gives a histogram its (sorted) buckets', async () => {
    const file = bootstrap(['h:lat_ms=7', 'h:other_ms=7'], {
      stats_config: { histogram_bucket_settings: [{ match: { prefix: 'wasmcustom.lat' }, buckets: [10, 5] }, { match: { prefix: 'wasmcustom.' }, buckets: [100] }] },
    });
    await withSidecar(file, async (admin, url) => {
      assert.equal((await fetch(`${url}/x`)).status, 200);
      await until(async () => (await http(admin, '/stats/prometheus')).body.includes('lat_ms_count 1'), 10_000, 'the histogram recorded');
      const prom = (await http(admin, '/stats/prometheus')).body;
      assert.deepEqual(samples(prom, 'lat_ms_bucket'), ['lat_ms_bucket{le="5"} 0', 'lat_ms_bucket{le="10"} 1', 'lat_ms_bucket{le="+Inf"} 1']);
      assert.deepEqual(samples(prom, 'other_ms_bucket'), ['other_ms_bucket{le="100"} 1', 'other_ms_bucket{le="+Inf"} 1']);
    });
  });

  it('refuses bad stats_config fields with the field path', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ histogram_bucket_settings: [{ match: { prefix: 'x' }, buckets: [] }] }, 'stats_config.histogram_bucket_settings[0].buckets'],
      [{ stats_tags: [{ tag_name: 'no_default' }] }, 'stats_config.stats_tags[0].regex'],
      [{ stats_tags: [{ tag_name: 't', regex: '([' }] }, 'stats_config.stats_tags[0].regex'],
      [{ stats_matcher: { inclusion_list: { patterns: [{ safe_regex: { regex: '[' } }] } } }, 'stats_config.stats_matcher.inclusion_list.patterns[0].safe_regex.regex'],
    ];
    for (const [statsConfig, path] of cases) {
      const file = bootstrap(['x'], { stats_config: statsConfig });
      await assert.rejects(Sidecar.start({ configFile: file, logger: silentLogger() }), (e: unknown) => e instanceof ConfigError && e.path === path, path);
    }
  });
});
