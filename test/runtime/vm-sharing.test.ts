import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sidecar } from '../../src/main';
import { startSidecar, TempDir, Upstream, type FilterSpec } from '../http/helpers';

// VM sharing by vm key, as Envoy/cpp-host: two wasm filters with the same vm_id, code and vm configuration run on
// one VM (one package-level counter in the Go plugin vm-shared, two root contexts, proxy_on_vm_start on each);
// different vm_ids give two VMs. A trap fails the shared VM for both plugins, and each applies its own policy.

const tmp = new TempDir();
let up: Upstream;

before(async () => {
  up = await Upstream.start((_req, res) => res.end('ok'));
});
after(async () => {
  await up.close();
  tmp.cleanup();
});

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers }> {
  const r = await fetch(url, { headers });
  await r.arrayBuffer();
  return { status: r.status, headers: r.headers };
}

function counter(label: string, vmId: string, extra: Partial<FilterSpec> = {}): FilterSpec {
  return { plugin: 'go/vm-shared', name: `counter-${label}`, rootId: '', vmId, configuration: `counter:${label}`, ...extra };
}

async function withSidecar(filters: FilterSpec[], body: (sidecar: Sidecar, url: string) => Promise<void>): Promise<void> {
  const { sidecar, url } = await startSidecar(tmp, { filters, clusters: [{ name: 'backend', port: up.port }] });
  try {
    await body(sidecar, url);
  } finally {
    await sidecar.stop();
  }
}

describe('VM sharing by vm_id', () => {
  it('two filters with one vm_id, code and vm configuration share one VM: one counter, two root contexts', async () => {
    await withSidecar([counter('a', 'shared'), counter('b', 'shared')], async (sidecar, url) => {
      const [a, b] = sidecar.plugins;
      assert.equal(a!.vm, b!.vm, 'one VM instance');
      assert.notEqual(a!.root.id, b!.root.id, 'a root context each');
      for (let n = 1; n <= 3; n++) {
        const r = await get(`${url}/x`);
        assert.equal(r.status, 200);
        // Response filters run in reverse order (b, then a) and both increment the one VM-global counter.
        assert.equal(r.headers.get('x-vm-count-b'), String(2 * n - 1));
        assert.equal(r.headers.get('x-vm-count-a'), String(2 * n));
        assert.equal(r.headers.get('x-vm-starts-a'), '2', 'proxy_on_vm_start ran once per root context on the one VM');
      }
    });
  });

  it('different vm_ids get separate VMs: one counter each', async () => {
    await withSidecar([counter('a', 'vm-1'), counter('b', 'vm-2')], async (sidecar, url) => {
      const [a, b] = sidecar.plugins;
      assert.notEqual(a!.vm, b!.vm);
      for (let n = 1; n <= 2; n++) {
        const r = await get(`${url}/x`);
        assert.equal(r.headers.get('x-vm-count-a'), String(n));
        assert.equal(r.headers.get('x-vm-count-b'), String(n));
        assert.equal(r.headers.get('x-vm-starts-a'), '1');
      }
    });
  });


  it('a trap fails the shared VM for every plugin on it; each then follows its own failure policy', async () => {
    await withSidecar([counter('a', 'shared', { failurePolicy: 'FAIL_OPEN' }), counter('b', 'shared', { failurePolicy: 'FAIL_RELOAD' })], async (sidecar, url) => {
      const [a, b] = sidecar.plugins;
      const first = await get(`${url}/x`);
      assert.equal(first.headers.get('x-vm-count-a'), '2');
      await get(`${url}/trap`, { 'x-trap': 'a' });
      assert.ok(a!.failed, 'the plugin that trapped is failed');
      // b did not trap, but its VM did: under FAIL_RELOAD it moves to a new VM for the next stream.
      const next = await get(`${url}/x`);
      assert.equal(next.status, 200);
      assert.equal(next.headers.get('x-vm-count-a'), null, 'FAIL_OPEN: a is bypassed');
      assert.equal(next.headers.get('x-vm-count-b'), '1', 'FAIL_RELOAD: b runs on a fresh VM (a new counter)');
      assert.equal(b!.vmGeneration, 2);
      assert.notEqual(a!.vm, b!.vm);
      assert.ok(a!.failed, 'a stays on the failed VM (FAIL_OPEN does not reload)');
    });
  });

  it('Higress SDK plugins on one shared VM keep their own configuration (a root context each)', async () => {
    const addHeader = (n: string): FilterSpec => ({
      plugin: 'go/add-header', name: `higress-${n}`, rootId: '', vmId: 'higress', configuration: JSON.stringify({ response_header: `x-higress-${n}`, value: n }),
    });
    await withSidecar([addHeader('one'), addHeader('two')], async (sidecar, url) => {
      assert.equal(sidecar.plugins[0]!.vm, sidecar.plugins[1]!.vm);
      const r = await get(`${url}/x`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-higress-one'), 'one');
      assert.equal(r.headers.get('x-higress-two'), 'two');
    });
  });

  it('FAIL_CLOSED on a VM another plugin trapped refuses the request', async () => {
    await withSidecar([counter('a', 'shared', { failurePolicy: 'FAIL_CLOSED' }), counter('b', 'shared', { failurePolicy: 'FAIL_OPEN' })], async (sidecar, url) => {
      await get(`${url}/trap`, { 'x-trap': 'b' });
      assert.ok(sidecar.plugins[0]!.failed, 'a fails with the VM b trapped in');
      const next = await get(`${url}/x`);
      assert.equal(next.status, 503);
    });
  });
});
