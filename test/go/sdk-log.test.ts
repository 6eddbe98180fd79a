import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream } from '../http/helpers';
import { until } from '../support/until';
import { LogCapture, setLogLevel, startGoSidecar, type GoSidecar } from './helpers';

// The Higress SDK's logging (wasm-go pkg/log over wrapper.DefaultLog): before each line the SDK asks the host
// for its level (foreign function get_log_level; Envoy answers its wasm logger's spdlog level, trace 0 ...
// critical 5, off 6) and makes no proxy_log call for a line below it. Envoy prints a line as
// `wasm log <plugin name> <root_id> <vm_id>: <message>` (each part only when set); the sidecar's pino line
// carries the PluginConfig name as `plugin` and the plugin's level as `wasm_level`. The message is the SDK's:
// `[<SetCtx name>] [<_plugin_id_>] [<x-request-id>] text`.

const tmp = new TempDir();
let backend: Upstream;

before(async () => {
  backend = await Upstream.start();
});

after(async () => {
  await backend?.close();
  tmp.cleanup();
});

const FILTER = {
  plugin: 'go/sdk-log', name: 'log-filter', rootId: '', vmId: 'log-vm', configuration: JSON.stringify({ _plugin_id_: 'log-plugin-id' }),
};

async function get(url: string, path: string, requestId: string): Promise<string | undefined> {
  const res = await request(`${url}${path}`, { headers: { 'x-request-id': requestId } });
  await res.body.dump();
  assert.equal(res.statusCode, 200);
  const v = res.headers['x-host-log-level'];
  return Array.isArray(v) ? v.join(',') : v;
}

describe('one process: /logging?level= changes what the SDK logs', () => {
  const capture = new LogCapture('info');
  let sc: GoSidecar;

  before(async () => {
    sc = await startGoSidecar(tmp, { filters: [FILTER], clusters: [{ name: 'backend', port: backend.port }], admin: true }, { logger: capture.logger });
  });
  after(async () => {
    await sc?.sidecar.stop();
  });

  /** The wasm levels of the plugin's lines for one request, once its last line (critical) is in. */
  async function levelsFor(requestId: string, expectAny: boolean): Promise<string[]> {
    const mine = () => capture.pluginLines('log-filter').filter((l) => l.msg.includes(`[${requestId}]`));
    if (expectAny) await until(() => mine().some((l) => l.msg.includes('critical-mark')), 10_000, `critical line of ${requestId}`);
    return mine().map((l) => l.wasm_level!);
  }

  it('logs at start-up with the PluginConfig name, outside any request', () => {
    const start = capture.pluginLines('log-filter').find((l) => l.msg === '[sdk-log] [log-plugin-id] [nil] plugin start successfully');
    assert.ok(start, JSON.stringify(capture.pluginLines('log-filter')));
    assert.equal(start.wasm_level, 'info');
  });

  it('at info: info and above reach the log, the SDK was told 2', async () => {
    assert.equal(await get(sc.url, '/a', 'req-a'), '2');
    assert.deepEqual(await levelsFor('req-a', true), ['info', 'warn', 'error', 'critical']);
    const lines = capture.pluginLines('log-filter').filter((l) => l.msg.includes('[req-a]'));
    assert.deepEqual(lines.map((l) => l.msg), [
      '[sdk-log] [log-plugin-id] [req-a] info-mark /a',
      '[sdk-log] [log-plugin-id] [req-a] warn-mark /a',
      '[sdk-log] [log-plugin-id] [req-a] error-mark /a',
      '[sdk-log] [log-plugin-id] [req-a] critical-mark /a',
    ]);
    // pino's numeric levels for the plugin's levels.
    assert.deepEqual(lines.map((l) => l.level), [30, 40, 50, 60]);
  });

  it('level=debug: debug lines appear, the SDK was told 1', async () => {
    const r = await setLogLevel(sc.adminUrl!, 'debug');
    assert.equal(r.status, 200, r.body);
    assert.equal(await get(sc.url, '/b', 'req-b'), '1');
    assert.deepEqual(await levelsFor('req-b', true), ['debug', 'info', 'warn', 'error', 'critical']);
  });

  it('level=trace: every line, the SDK was told 0', async () => {
    assert.equal((await setLogLevel(sc.adminUrl!, 'trace')).status, 200);
    assert.equal(await get(sc.url, '/c', 'req-c'), '0');
    assert.deepEqual(await levelsFor('req-c', true), ['trace', 'debug', 'info', 'warn', 'error', 'critical']);
  });

  it('level=error: only error and critical, the SDK was told 4', async () => {
    assert.equal((await setLogLevel(sc.adminUrl!, 'error')).status, 200);
    assert.equal(await get(sc.url, '/d', 'req-d'), '4');
    assert.deepEqual(await levelsFor('req-d', true), ['error', 'critical']);
  });

  it('level=off: nothing reaches the log', async () => {
    assert.equal((await setLogLevel(sc.adminUrl!, 'off')).status, 200);
    await get(sc.url, '/e', 'req-e');
    // A later request at info proves the log is flowing again and that nothing of req-e was written before it.
    assert.equal((await setLogLevel(sc.adminUrl!, 'info')).status, 200);
    assert.equal(await get(sc.url, '/f', 'req-f'), '2');
    await levelsFor('req-f', true);
    assert.deepEqual(await levelsFor('req-e', false), []);
  });

  it('level=off: the SDK is told 6 (spdlog off), above critical, so it makes no proxy_log call at all', async () => {
    assert.equal((await setLogLevel(sc.adminUrl!, 'off')).status, 200);
    try {
      assert.equal(await get(sc.url, '/g', 'req-g'), '6');
    } finally {
      await setLogLevel(sc.adminUrl!, 'info');
    }
  });

  it('an unknown level is refused with Envoy\'s usage text and changes nothing', async () => {
    const r = await setLogLevel(sc.adminUrl!, 'loud');
    assert.equal(r.status, 404);
    assert.match(r.body, /unknown logger level/);
    assert.equal(await get(sc.url, '/h', 'req-h'), '2');
  });
});

describe('worker threads: /logging?level= reaches every worker\'s plugins', () => {
  let sc: GoSidecar;
  before(async () => {
    // Workers log to their own stderr, not to this logger: start silent so the test prints nothing.
    sc = await startGoSidecar(tmp, { filters: [FILTER], clusters: [{ name: 'backend', port: backend.port }], admin: true }, { concurrency: 2, logger: new LogCapture('silent').logger });
  });
  after(async () => {
    await sc?.sidecar.stop();
  });

  it('the SDK in a worker is told the new level', async () => {
    assert.notEqual(await get(sc.url, '/w1', 'req-w1'), '4');
    assert.equal((await setLogLevel(sc.adminUrl!, 'error')).status, 200);
    const levels = await Promise.all(Array.from({ length: 8 }, (_, i) => get(sc.url, `/w2-${i}`, `req-w2-${i}`)));
    assert.deepEqual(levels, Array.from({ length: 8 }, () => '4'));
  });
});
