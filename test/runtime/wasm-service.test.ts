import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { Sidecar } from '../../src/main';
import { silentLogger } from '../../src/common/logger';
import { pluginPath } from '../support/plugins';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { http, statLines } from '../admin/helpers';

/** Envoy's gauge of live Wasm VMs in this thread. */
async function activeVms(sidecar: Sidecar): Promise<string | undefined> {
  const port = (await sidecar.admin!.start()).port;
  return statLines((await http(port, '/stats?filter=^wasm\\.')).body).get('wasm.envoy.wasm.runtime.v8.active');
}

// bootstrap_extensions with envoy.bootstrap.wasm (WasmService): the Go plugin vm-shared as a service ticks and
// counts into shared data, registers a queue, and drains it; the same module as an HTTP plugin (vm_id `svc`)
// enqueues on each request and answers with what the service wrote. singleton: one instance, in the main
// thread (its own VM); otherwise one per worker, on the VM of the HTTP plugins of the same vm key.

const tmp = new TempDir();
let up: Upstream;

before(async () => {
  up = await Upstream.start((_req, res) => res.end('ok'));
});
after(async () => {
  await up.close();
  tmp.cleanup();
});

function serviceBootstrap(singleton: boolean, extra: Record<string, unknown> = {}): string {
  const doc = bootstrapJson({
    filters: [{ plugin: 'go/vm-shared', name: 'reader', rootId: '', vmId: 'svc', configuration: 'reader:svc' }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  doc['bootstrap_extensions'] = [{
    name: 'envoy.bootstrap.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.wasm.v3.WasmService',
      singleton,
      config: {
        name: 'ticker',
        vm_config: { vm_id: 'svc', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath('go/vm-shared') } } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'service:20' },
      },
    },
  }];
  doc['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  Object.assign(doc, extra);
  return tmp.write(`svc-${singleton}-${Math.random().toString(36).slice(2)}.json`, doc);
}

async function read(url: string): Promise<Record<string, number>> {
  const r = await fetch(`${url}/read`);
  assert.equal(r.status, 200);
  const out: Record<string, number> = {};
  for (const kv of (await r.text()).split(' ')) {
    const [k, v] = kv.split('=');
    out[k!] = Number(v);
  }
  return out;
}

async function withSidecar(file: string, concurrency: number, body: (sidecar: Sidecar, url: string) => Promise<void>): Promise<void> {
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000, concurrency });
  try {
    await body(sidecar, `http://127.0.0.1:${sidecar.publicListeners[0]!.port}`);
  } finally {
    await sidecar.stop();
  }
}

describe('Wasm services (bootstrap_extensions envoy.bootstrap.wasm)', () => {
  it('a service ticks and sets shared data an HTTP plugin of its vm_id reads; queues reach the service', async () => {
    await withSidecar(serviceBootstrap(false), 1, async (sidecar, url) => {
      assert.equal(sidecar.wasmServices.length, 1);
      await until(async () => (await read(url)).ticks! >= 3, 20_000, 'the service ticked three times');
      await until(async () => (await read(url)).dequeued! >= 1, 20_000, 'the service drained the queue the HTTP plugin fills');
      const r = await read(url);
      assert.equal(r.instances, 1);
      // Not a singleton: the service runs on the worker's VM of its vm key, with the reader (2 root contexts).
      assert.equal(r.starts, 2);
      assert.equal(sidecar.wasmServices[0]!.vm, sidecar.plugins[0]!.vm);
      assert.equal(await activeVms(sidecar), '1', 'one VM for the service and the HTTP plugin');
    });
  });

  it('singleton: true runs in the main thread on a VM of its own', async () => {
    await withSidecar(serviceBootstrap(true), 1, async (sidecar, url) => {
      await until(async () => (await read(url)).ticks! >= 2, 20_000, 'the singleton ticked');
      const r = await read(url);
      assert.equal(r.instances, 1);
      assert.equal(r.starts, 1, 'the reader is alone on its VM');
      assert.notEqual(sidecar.wasmServices[0]!.vm, sidecar.plugins[0]!.vm);
      assert.equal(await activeVms(sidecar), '2');
    });
  });

  it('with --concurrency 2: a singleton is one instance, a non-singleton one per worker', async () => {
    await withSidecar(serviceBootstrap(true), 2, async (_sidecar, url) => {
      await until(async () => (await read(url)).ticks! >= 2, 20_000, 'the singleton ticked');
      assert.equal((await read(url)).instances, 1);
    });
    await withSidecar(serviceBootstrap(false), 2, async (sidecar, url) => {
      // Every worker starts its services before it reports ready, so both have counted by now.
      assert.equal((await read(url)).instances, 2);
      await until(async () => (await read(url)).ticks! >= 4, 20_000, 'both services ticked');
      // The workers' listener counters reach the main thread's admin, summed by name.
      const port = (await sidecar.admin!.start()).port;
      await until(async () => Number(statLines((await http(port, '/stats')).body).get('http.ingress_http.downstream_rq_http1_total') ?? 0) >= 2, 20_000, 'worker counters summed');
    });
  });

  it('refuses a bootstrap extension other than envoy.bootstrap.wasm, and a bad service config, with the path', async () => {
    const other = serviceBootstrap(false, {
      bootstrap_extensions: [{ name: 'envoy.bootstrap.vcl', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Empty' } }],
    });
    await assert.rejects(Sidecar.start({ configFile: other, logger: silentLogger() }), (e: unknown) => e instanceof ConfigError && e.path === 'bootstrap_extensions[0].typed_config.@type');
    const badCode = serviceBootstrap(false, {
      bootstrap_extensions: [{
        name: 'envoy.bootstrap.wasm',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.wasm.v3.WasmService',
          config: { name: 'x', vm_config: { vm_id: 'svc', runtime: 'envoy.wasm.runtime.v8', code: { remote: { http_uri: { uri: 'http://x/y.wasm', cluster: 'backend', timeout: '1s' }, sha256: 'ab' } } } },
        },
      }],
    });
    await assert.rejects(Sidecar.start({ configFile: badCode, logger: silentLogger() }), (e: unknown) => e instanceof ConfigError && e.path === 'bootstrap_extensions[0].typed_config.config.vm_config.code.remote.sha256');
  });
});
