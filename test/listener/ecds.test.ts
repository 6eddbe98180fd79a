import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pluginPath } from '../support/plugins';
import { after, before, describe, it } from 'node:test';
import { Client, Pool, request } from 'undici';
import { ECDS_TYPE_URL, LDS_TYPE_URL } from '../../src/xds/type-urls';
import { until } from '../support/until';
import { activeVersion, addHeaderExtension, ecdsFilter, listener, startEnv, staticCluster, wasmAny, type Env } from './helpers';

/**
 * ECDS for the Wasm filter through the real control plane, the real ADS client and the real add-header plugin:
 * the plugin adds `x-added-by: <configuration>` to the request (the upstream echoes it) and to the response, so
 * each response tells which plugin (old or new VM) ran its request and its response callbacks.
 */

describe('ECDS: Wasm filter configuration over xDS', () => {
  let env: Env;
  before(async () => {
    env = await startEnv((xds) => {
      xds.setListeners([listener('ecds', { cluster: 'app-a', filters: [ecdsFilter('hdr')] })]);
      xds.setExtensionConfigs([addHeaderExtension('hdr', 'one')]);
    });
  });
  after(() => env.close());

  const hdrPlugins = (): number => env.sidecar.plugins.filter((p) => p.config.name === 'hdr').length;

  it('the listener warms until its extension config arrives, then its plugin serves', async () => {
    const r = await request(`http://127.0.0.1:${env.port('ecds')}/`);
    assert.equal(await r.body.text(), 'A one');
    assert.equal(r.headers['x-added-by'], 'one');
    assert.equal((await env.xds.lastOutcome(ECDS_TYPE_URL)).ack, true);
    assert.equal(hdrPlugins(), 1);
  });

  it('a plugin swap under load loses no request; a stream started before it finishes on the old VM, which then closes', async () => {
    const url = `http://127.0.0.1:${env.port('ecds')}`;
    const held = new Client(url);
    const inflight = held.request({ method: 'GET', path: '/hold' });
    await env.a.holding(1);
    const pool = new Pool(url, { connections: 4 });
    const seen = new Map<string, number>();
    const mismatched: string[] = [];
    let failures = 0;
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        try {
          const r = await pool.request({ method: 'GET', path: '/load' });
          const body = await r.body.text();
          if (r.statusCode !== 200) failures++;
          // One stream, one VM: the response callback ran on the plugin its request callback ran on.
          if (body !== `A ${String(r.headers['x-added-by'])}`) mismatched.push(`${body} / ${String(r.headers['x-added-by'])}`);
          seen.set(body, (seen.get(body) ?? 0) + 1);
        } catch {
          failures++;
        }
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    await until(() => (seen.get('A one') ?? 0) >= 20, 10_000, 'load on plugin one');
    env.xds.setExtensionConfigs([addHeaderExtension('hdr', 'two')]);
    env.xds.push(ECDS_TYPE_URL);
    await until(() => (seen.get('A two') ?? 0) >= 20, 10_000, 'load on plugin two');
    stop = true;
    await Promise.all(workers);
    await pool.close();
    assert.equal(failures, 0, `every request succeeded (${JSON.stringify([...seen])})`);
    assert.deepEqual(mismatched, []);
    assert.deepEqual([...seen.keys()].sort(), ['A one', 'A two']);
    assert.equal(hdrPlugins(), 2, 'the old plugin is still open for the held stream');
    env.a.release();
    const r = await inflight;
    assert.equal(await r.body.text(), 'A one');
    assert.equal(r.headers['x-added-by'], 'one', 'the held stream finished on the old VM');
    await held.close();
    await until(() => hdrPlugins() === 1, 10_000, 'old plugin closed once its last stream completed');
  });

  it('a config whose plugin fails to load is NACKed with the reason; the last good plugin keeps serving', async () => {
    env.xds.setExtensionConfigs([addHeaderExtension('hdr', '', 'reject-config', 'reject')]);
    env.xds.push(ECDS_TYPE_URL);
    let o = await env.xds.lastOutcome(ECDS_TYPE_URL);
    assert.equal(o.ack, false);
    assert.ok(!o.ack && /hdr/.test(o.detail) && /proxy_on_configure/.test(o.detail), !o.ack ? o.detail : '');
    const r = await request(`http://127.0.0.1:${env.port('ecds')}/`);
    assert.equal(r.headers['x-added-by'], 'two');
    assert.equal(await r.body.text(), 'A two');

    const missingFile = addHeaderExtension('hdr', 'three');
    ((missingFile['typed_config'] as any).config.vm_config.code.local as Record<string, string>)['filename'] = '/does/not/exist.wasm';
    env.xds.setExtensionConfigs([missingFile]);
    env.xds.push(ECDS_TYPE_URL);
    await until(() => env.xds.lastNonceFor(ECDS_TYPE_URL) !== '' && env.xds.outcome(env.xds.lastNonceFor(ECDS_TYPE_URL)) !== undefined, 10_000, 'ECDS answer');
    o = await env.xds.lastOutcome(ECDS_TYPE_URL);
    assert.ok(!o.ack && /exist\.wasm/.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal((await request(`http://127.0.0.1:${env.port('ecds')}/`)).headers['x-added-by'], 'two');
    assert.equal(hdrPlugins(), 1);

    const dump = await (await request(`${env.adminUrl}/config_dump?resource=ecds_filters`)).body.json() as { configs: Array<Record<string, any>> };
    assert.equal(dump.configs.length, 1);
    assert.equal(dump.configs[0]!['ecds_filter']['name'], 'hdr');
    assert.equal(dump.configs[0]!['ecds_filter']['typed_config']['config']['configuration']['value'], 'two');
    assert.match(dump.configs[0]!['error_state']?.['details'] ?? '', /exist\.wasm/);
  });

  it('default_config with apply_default_config_without_warming serves at once, until the resource arrives', async () => {
    const v = env.xds.setListeners([
      listener('ecds', { cluster: 'app-a', filters: [ecdsFilter('hdr')] }),
      listener('dflt', { cluster: 'app-a', filters: [ecdsFilter('later', { default_config: wasmAny('later', 'add-header', 'add_header', 'default'), apply_default_config_without_warming: true })] }),
    ]);
    env.xds.push(LDS_TYPE_URL);
    await activeVersion(env, 'dflt', v);
    const url = `http://127.0.0.1:${env.port('dflt')}/`;
    assert.equal(await (await request(url)).body.text(), 'A default');
    env.xds.setExtensionConfigs([addHeaderExtension('hdr', 'two'), addHeaderExtension('later', 'delivered')]);
    env.xds.push(ECDS_TYPE_URL);
    await until(async () => (await (await request(url)).body.text()) === 'A delivered', 10_000, 'ECDS config replaces the default');
  });
});

describe('ECDS with plugin code by URL (vm_config.code.remote)', () => {
  let env: Env;
  let codeServer: Server;
  const wasm = readFileSync(pluginPath('add-header'));
  const sha = createHash('sha256').update(wasm).digest('hex');
  let fetches = 0;

  function remoteExtension(value: string, sha256: string): Record<string, unknown> {
    const ext = addHeaderExtension('remote-hdr', value);
    const vm = (ext['typed_config'] as any).config.vm_config;
    vm.code = { remote: { http_uri: { uri: 'http://code.test/add-header.wasm', cluster: 'code-server', timeout: '5s' }, sha256, retry_policy: { num_retries: 0 } } };
    return ext;
  }

  before(async () => {
    codeServer = createServer((_req, res) => {
      fetches++;
      res.end(wasm);
    });
    await new Promise<void>((r) => codeServer.listen(0, '127.0.0.1', r));
    const port = (codeServer.address() as AddressInfo).port;
    env = await startEnv((xds) => {
      xds.setListeners([listener('remote', { cluster: 'app-a', filters: [ecdsFilter('remote-hdr')] })]);
      xds.setExtensionConfigs([remoteExtension('one', sha)]);
    }, { clusters: [staticCluster('code-server', port)] });
  });
  after(async () => {
    await env.close();
    codeServer.closeAllConnections();
    await new Promise<void>((r) => codeServer.close(() => r()));
  });

  it('a plugin fetched by URL serves; one whose sha256 does not match is NACKed and the old one keeps serving', async () => {
    const url = `http://127.0.0.1:${env.port('remote')}/`;
    assert.equal(await (await request(url)).body.text(), 'A one');
    assert.ok(fetches <= 1, 'fetched at most once (the disk cache may already hold it)');
    env.xds.setExtensionConfigs([remoteExtension('two', 'f'.repeat(64))]);
    env.xds.push(ECDS_TYPE_URL);
    const o = await env.xds.lastOutcome(ECDS_TYPE_URL);
    assert.ok(!o.ack && /sha256/.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal(await (await request(url)).body.text(), 'A one');
  });
});
