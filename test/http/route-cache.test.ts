import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';
import { TempDir, Upstream } from './helpers';
import { startShaped } from './host-bootstrap';

// Envoy selects the route before the filters run and caches it; a Wasm filter's request-header change clears the
// cache (Context::clearRouteCache), so the router selects again from the changed headers. Higress's
// ctx.DisableReroute() (clear_route_cache=off) stops that: the first route stays.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

async function start(disableReroute: boolean) {
  const a = await Upstream.start((_req, res) => res.end('a'));
  const b = await Upstream.start((_req, res) => res.end('b'));
  cleanups.push(() => a.close(), () => b.close());
  const config = JSON.stringify({ header: 'x-target', value: 'b', disable_reroute: disableReroute });
  const { sidecar, url } = await startShaped(tmp, {
    filters: [{ plugin: 'go/host-reroute', name: 'reroute', rootId: '', configuration: config }],
    clusters: [{ name: 'a', port: a.port }, { name: 'b', port: b.port }],
  }, ({ routeConfig }) => {
    routeConfig['virtual_hosts'] = [{
      name: 'vh',
      domains: ['*'],
      routes: [
        { name: 'to-b', match: { prefix: '/', headers: [{ name: 'x-target', string_match: { exact: 'b' } }] }, route: { cluster: 'b' } },
        { name: 'to-a', match: { prefix: '/' }, route: { cluster: 'a' } },
      ],
    }];
  });
  cleanups.push(() => sidecar.stop());
  return url;
}

test("a plugin's header change re-selects the route", async () => {
  const url = await start(false);
  const res = await request(`${url}/x`);
  assert.equal(await res.body.text(), 'b');
});

test('after DisableReroute (clear_route_cache=off) the first route stays', async () => {
  const url = await start(true);
  const res = await request(`${url}/x`);
  assert.equal(await res.body.text(), 'a');
});

test('the test kit counts route cache clears the same way', async () => {
  for (const [disable, clears] of [[false, 1], [true, 0]] as const) {
    const host = await HostEmulator.load(pluginPath('go/host-reroute'), {
      name: 'reroute', configuration: JSON.stringify({ header: 'x-target', value: 'b', disable_reroute: disable }),
    });
    try {
      const s = host.stream();
      s.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'h']], true);
      assert.equal(s.header('x-target'), 'b');
      assert.equal(s.routeCacheClears, clears);
      s.complete();
    } finally {
      host.close();
    }
  }
});
