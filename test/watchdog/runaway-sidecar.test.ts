import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream, type FilterSpec } from '../http/helpers';
import { DEFAULT_CALL_DEADLINE_MS } from '../../src/wasm/watchdog';
import { startListeners } from './sidecar-bootstrap';

// A plugin that never returns from proxy_on_request_headers, in a real sidecar: the watchdog stops the call at
// its deadline, the plugin's failure_policy answers that stream, and everything the thread also serves (another
// listener, the admin) is answered too. Without the watchdog these requests never complete and the test times out.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

const looping = (name: string, failurePolicy: 'FAIL_OPEN' | 'FAIL_CLOSED' | 'FAIL_RELOAD'): FilterSpec => ({ plugin: 'hostile-loop', name, rootId: '', failurePolicy });
const bystander: FilterSpec = { plugin: 'add-header', name: 'bystander', rootId: 'add_header' };

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers, headersTimeout: 60_000, bodyTimeout: 60_000 });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

async function start() {
  const up = await Upstream.start();
  cleanups.push(() => up.close());
  const running = await startListeners(tmp, up.port, [
    [looping('closed', 'FAIL_CLOSED')], [looping('open', 'FAIL_OPEN')], [looping('reload', 'FAIL_RELOAD')], [bystander],
  ]);
  cleanups.push(() => running.sidecar.stop());
  return { ...running, up };
}

test('a callback looping for ever is stopped at the deadline and answered per failure_policy; the other listener and /ready answer meanwhile', async () => {
  const { sidecar, urls, admin, up } = await start();
  const [closed, open, reload, other] = urls as [string, string, string, string];
  assert.equal((await get(`${closed}/warm`)).status, 200, 'the plugin serves ordinary requests');

  const started = performance.now();
  const stuck = get(`${closed}/stuck`, { 'x-loop': '1' });
  // Sent while the loop holds the thread: they are answered once the watchdog stops it.
  const [bystanderRes, ready, stuckRes] = await Promise.all([get(`${other}/meanwhile`), get(`${admin}/ready`), stuck]);
  assert.equal(stuckRes.status, 503, 'FAIL_CLOSED: the looping stream is refused');
  assert.ok(performance.now() - started >= DEFAULT_CALL_DEADLINE_MS * 0.9, 'the call ran until its deadline');
  assert.equal(bystanderRes.status, 200);
  assert.equal(bystanderRes.headers['x-added-by'], 'proxy-wasm-sidecar', 'the other listener ran its own plugin');
  assert.equal(ready.status, 200);
  assert.equal(ready.body.trim(), 'LIVE');
  const closedPlugin = sidecar.plugins.find((p) => p.config.name === 'closed')!;
  assert.equal((closedPlugin.failed?.cause as { code?: string } | undefined)?.code, 'PWS_ERR_PLUGIN_DEADLINE');
  assert.equal((await get(`${closed}/after`)).status, 503, 'FAIL_CLOSED: later streams are refused too');

  const before = up.requests.length;
  const openRes = await get(`${open}/stuck`, { 'x-loop': '1' });
  assert.equal(openRes.status, 200, 'FAIL_OPEN: the stream goes on upstream without the plugin');
  assert.equal(up.requests.length, before + 1);
  assert.equal(up.requests.at(-1)!.url, '/stuck');

  assert.equal((await get(`${reload}/stuck`, { 'x-spin': '1' })).status, 503, 'FAIL_RELOAD: the stuck stream itself fails');
  const reloadPlugin = sidecar.plugins.find((p) => p.config.name === 'reload')!;
  const next = await get(`${reload}/next`);
  assert.equal(next.status, 200, 'FAIL_RELOAD: the next request runs on a rebuilt VM');
  assert.equal(reloadPlugin.vmGeneration, 2);
  assert.equal(reloadPlugin.failed, undefined);
});
