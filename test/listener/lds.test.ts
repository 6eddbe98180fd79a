import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, Pool, request } from 'undici';
import { freePort } from '../../src/common/free-port';
import { ConfigError } from '../../src/common/errors';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { TempDir } from '../http/helpers';
import { REFUSED_PORT } from '../support/ports';
import { LDS_TYPE_URL, RDS_TYPE_URL } from '../../src/xds/type-urls';
import { until } from '../support/until';
import { activeVersion, listener, routeConfig, startEnv, staticCluster, type Env } from './helpers';

/**
 * Listeners from LDS through the real ADS client and the real Sidecar: a listener delivered at run time serves,
 * a changed one takes new connections on its new chain (same port) while a stream in flight on the old one
 * completes, a removed one drains, routes swap under load without a failed request, bad resources are NACKed
 * with their reason while the last good configuration serves.
 */

async function get(url: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(url);
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

/** A TCP connect that either connects (true) or is refused (false). */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('LDS: listeners at run time', () => {
  let env: Env;
  before(async () => {
    env = await startEnv((xds) => {
      xds.setListeners([listener('inline', { cluster: 'app-a' })]);
    });
  });
  after(() => env.close());

  it('a listener delivered over LDS serves once the sidecar is LIVE', async () => {
    const r = await get(`http://127.0.0.1:${env.port('inline')}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'A -');
    assert.equal((await get(`${env.adminUrl}/ready`)).status, 200);
    const o = await env.xds.lastOutcome(LDS_TYPE_URL);
    assert.equal(o.ack, true);
  });

  it('a changed listener takes new connections on its new chain on the same port; a stream in flight on the old chain completes', async () => {
    const port = env.port('inline');
    const old = new Client(`http://127.0.0.1:${port}`);
    const idle = new Client(`http://127.0.0.1:${port}`);
    assert.equal(await (await idle.request({ method: 'GET', path: '/warm' })).body.text(), 'A -');
    const inflight = old.request({ method: 'GET', path: '/hold' });
    await env.a.holding(1);
    const version = env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' })]);
    env.xds.push(LDS_TYPE_URL);
    await activeVersion(env, 'inline', version);
    assert.equal(env.port('inline'), port, 'the port stayed bound');
    const fresh = new Client(`http://127.0.0.1:${port}`);
    assert.equal(await (await fresh.request({ method: 'GET', path: '/y' })).body.text(), 'B -', 'a new connection is served by the new chain');
    await fresh.close();
    // A keep-alive connection of the old version stays on its chain while it drains, and is told to close.
    const again = await idle.request({ method: 'GET', path: '/again' });
    assert.equal(await again.body.text(), 'A -');
    assert.equal(again.headers['connection'], 'close');
    await idle.close().catch(() => undefined);
    // The old version drains: its in-flight stream still completes, with connection: close.
    env.a.release();
    const r = await inflight;
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'A -');
    assert.equal(r.headers['connection'], 'close');
    await old.close().catch(() => undefined);
    await until(() => env.sidecar.listenerManager!.drainingCount === 0, 10_000, 'old version drained');
  });

  it('a removed listener stops accepting and drains its in-flight stream', async () => {
    env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' }), listener('doomed', { cluster: 'app-a' })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.listener('doomed') !== undefined, 10_000, 'doomed active');
    const port = env.port('doomed');
    const c = new Client(`http://127.0.0.1:${port}`);
    const inflight = c.request({ method: 'GET', path: '/hold' });
    await env.a.holding(1);
    env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.listener('doomed') === undefined, 10_000, 'doomed removed');
    assert.equal(await connects(port), false, 'the removed listener refuses new connections');
    env.a.release();
    const r = await inflight;
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'A -');
    await c.close().catch(() => undefined);
    await until(() => env.sidecar.listenerManager!.drainingCount === 0, 10_000, 'removed listener drained');
    const listed = await get(`${env.adminUrl}/listeners`);
    assert.equal(listed.body, `inline::127.0.0.1:${env.port('inline')}\n`);
  });

  it('a listener on an address another listener holds is NACKed; the other keeps it', async () => {
    const port = await freePort();
    env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' }), listener('first', { cluster: 'app-a', port })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.listener('first') !== undefined, 10_000, 'first active');
    env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' }), listener('first', { cluster: 'app-a', port }), listener('second', { cluster: 'app-b', port })]);
    env.xds.push(LDS_TYPE_URL);
    const o = await env.xds.lastOutcome(LDS_TYPE_URL);
    assert.ok(!o.ack && /second/.test(o.detail) && /already used by listener 'first'/.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'A -');
    env.xds.setListeners([listener('inline', { cluster: 'app-b', statPrefix: 'v2' })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.listener('first') === undefined, 10_000, 'first removed');
  });

  it('a listener that cannot be built is NACKed with its reason and path; the last good version keeps serving', async () => {
    const before = env.sidecar.listenerManager!.dump().find((d) => d.name === 'inline')!.active!.version;
    const bad = listener('inline', { cluster: 'app-a' });
    const hcm = ((bad['filter_chains'] as Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }>)[0]!.filters[0]!.typed_config);
    (hcm['http_filters'] as unknown[]).unshift({ name: 'envoy.filters.http.cors', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors' } });
    env.xds.setListeners([bad]);
    env.xds.push(LDS_TYPE_URL);
    const o = await env.xds.lastOutcome(LDS_TYPE_URL);
    assert.equal(o.ack, false);
    assert.ok(!o.ack && /inline/.test(o.detail) && /http_filters\[0\]\.typed_config\.@type/.test(o.detail) && /Cors/.test(o.detail), !o.ack ? o.detail : '');
    assert.equal((await get(`http://127.0.0.1:${env.port('inline')}/z`)).body, 'B -', 'the last good version serves');
    const dump = JSON.parse((await get(`${env.adminUrl}/config_dump?resource=dynamic_listeners`)).body) as { configs: Array<Record<string, any>> };
    const entry = dump.configs.find((c) => c['name'] === 'inline')!;
    assert.equal(entry['active_state']['version_info'], before);
    assert.match(entry['error_state']['details'], /Cors/);
    assert.equal(entry['error_state']['failed_configuration']['@type'], LDS_TYPE_URL);
  });
});

describe('RDS', () => {
  let env: Env;
  before(async () => {
    env = await startEnv((xds) => {
      xds.setListeners([listener('rds', { rds: 'routes-1' })]);
      xds.setRoutes([routeConfig('routes-1', 'app-a')]);
    });
  });
  after(() => env.close());

  it('a route change under load moves traffic with zero failed requests; streams in flight keep their route', async () => {
    const url = `http://127.0.0.1:${env.port('rds')}`;
    const held = new Client(url);
    const inflight = held.request({ method: 'GET', path: '/hold' });
    await env.a.holding(1);
    const pool = new Pool(url, { connections: 4 });
    const seen = new Map<string, number>();
    let failures = 0;
    let sawB = false;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await pool.request({ method: 'GET', path: '/load' });
          const body = await r.body.text();
          if (r.statusCode !== 200) failures++;
          seen.set(body, (seen.get(body) ?? 0) + 1);
          if (body === 'B -') sawB = true;
        } catch {
          failures++;
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    await until(() => (seen.get('A -') ?? 0) >= 20, 10_000, 'load on route A');
    env.xds.setRoutes([routeConfig('routes-1', 'app-b')]);
    env.xds.push(RDS_TYPE_URL);
    await until(() => sawB && (seen.get('B -') ?? 0) >= 20, 10_000, 'load on route B');
    stop = true;
    await Promise.all(workers);
    await pool.close();
    assert.equal(failures, 0, `every request succeeded (${JSON.stringify([...seen])})`);
    assert.deepEqual([...seen.keys()].sort(), ['A -', 'B -'], 'both routes seen, nothing else');
    // The stream that started on the old table was routed by it.
    env.a.release();
    const r = await inflight;
    assert.equal(await r.body.text(), 'A -');
    await held.close();
    assert.equal((await env.xds.lastOutcome(RDS_TYPE_URL)).ack, true);
  });

  it('a route configuration that cannot be built is NACKed with its reason; the last good one keeps routing', async () => {
    const bad = routeConfig('routes-1', 'app-a', [{ match: { prefix: '/r' }, redirect: { path_redirect: '/x' } }]);
    env.xds.setRoutes([bad]);
    env.xds.push(RDS_TYPE_URL);
    const o = await env.xds.lastOutcome(RDS_TYPE_URL);
    assert.equal(o.ack, false);
    assert.ok(!o.ack && /routes-1/.test(o.detail) && /routes\[0\]/.test(o.detail), !o.ack ? o.detail : '');
    assert.equal((await get(`http://127.0.0.1:${env.port('rds')}/r`)).body, 'B -');
    const dump = JSON.parse((await get(`${env.adminUrl}/config_dump?resource=dynamic_route_configs`)).body) as { configs: Array<Record<string, any>> };
    assert.equal(dump.configs.length, 1);
    assert.equal(dump.configs[0]!['route_config']['name'], 'routes-1');
    assert.equal(dump.configs[0]!['route_config']['virtual_hosts'][0]['routes'][0]['route']['cluster'], 'app-b');
  });

  it('a listener warms until its route configuration arrives: refused before, served after', async () => {
    const v = env.xds.setListeners([listener('rds', { rds: 'routes-1' }), listener('late', { rds: 'routes-late', port: 0 })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.dump().find((d) => d.name === 'late')?.warming?.version === v, 10_000, 'late warming');
    assert.equal(env.sidecar.listenerManager!.listener('late'), undefined, 'not served while warming');
    const dump = JSON.parse((await get(`${env.adminUrl}/config_dump?resource=dynamic_listeners`)).body) as { configs: Array<Record<string, any>> };
    assert.ok(dump.configs.find((c) => c['name'] === 'late')?.['warming_state'], 'config_dump shows it warming');
    env.xds.setRoutes([routeConfig('routes-1', 'app-b'), routeConfig('routes-late', 'app-a')]);
    env.xds.push(RDS_TYPE_URL);
    await activeVersion(env, 'late', v);
    assert.equal((await get(`http://127.0.0.1:${env.port('late')}/w`)).body, 'A -');
  });
});

describe('LDS and RDS over Delta ADS', () => {
  let env: Env;
  before(async () => {
    env = await startEnv((xds) => {
      xds.setListeners([listener('delta', { rds: 'delta-routes' }), listener('gone', { cluster: 'app-a' })]);
      xds.setRoutes([routeConfig('delta-routes', 'app-a')]);
    }, { apiType: 'DELTA_GRPC' });
  });
  after(() => env.close());

  it('listeners and routes arrive, change and go (removed_resources) as over SotW', async () => {
    const port = env.port('delta');
    assert.equal((await get(`http://127.0.0.1:${port}/`)).body, 'A -');
    const gonePort = env.port('gone');
    env.xds.setRoutes([routeConfig('delta-routes', 'app-b')]);
    env.xds.push(RDS_TYPE_URL);
    await until(async () => (await get(`http://127.0.0.1:${port}/`)).body === 'B -', 10_000, 'route change over Delta');
    env.xds.setListeners([listener('delta', { rds: 'delta-routes' })]);
    env.xds.push(LDS_TYPE_URL);
    await until(() => env.sidecar.listenerManager!.listener('gone') === undefined, 10_000, 'listener removed over Delta');
    await until(async () => !(await connects(gonePort)), 10_000, 'removed listener closed');
    assert.equal(env.port('delta'), port);
  });
});

describe('with workers (--concurrency > 1)', () => {
  it('LDS is refused at start with its path, never accepted and ignored', async () => {
    const tmp = new TempDir();
    try {
      const file = tmp.write('bootstrap.json', {
        node: { id: 'n', cluster: 'c' },
        static_resources: { clusters: [staticCluster('xds-grpc', REFUSED_PORT)] },
        dynamic_resources: {
          ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
          lds_config: { ads: {}, resource_api_version: 'V3' },
        },
      });
      await assert.rejects(Sidecar.start({ configFile: file, logger: silentLogger(), concurrency: 2 }), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.path, 'dynamic_resources.lds_config');
        return true;
      });
    } finally {
      tmp.cleanup();
    }
  });
});
