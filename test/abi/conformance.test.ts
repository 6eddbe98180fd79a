import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HostEmulator, type EmulatedStream } from '../../src/testing/host-emulator';
import { RecordedHttpCallouts } from '../../src/testing/recorded-callouts';
import { HOST_FUNCTIONS } from '../../src/abi/host-functions';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { RedisPoolManager } from '../../src/redis/pool-manager';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { pluginPath } from '../support/plugins';
import { clusterConfig } from '../redis/helpers';

// Conformance: at least one case per host function and per status path, through real plugins (the
// AssemblyScript abi-probe, the .wat ABI fixtures, the Redis plugins). The last test derives the list of
// functions from HOST_FUNCTIONS and checks each was called by some plugin here.

const exercised = new Set<string>();
const emulators: HostEmulator[] = [];
let redis: RedisServer;
let clusters: ClusterManager;
let pools: RedisPoolManager;
const callouts = new RecordedHttpCallouts(new Set(['callout-cluster']));
let probe: HostEmulator;

async function load(...args: Parameters<typeof HostEmulator.load>): Promise<HostEmulator> {
  const e = await HostEmulator.load(...args);
  emulators.push(e);
  return e;
}

before(async () => {
  redis = await RedisServer.start();
  clusters = new ClusterManager();
  clusters.addOrUpdateCluster(clusterConfig('redis-conf', [['127.0.0.1', redis.port]]));
  pools = new RedisPoolManager(clusters);
  probe = await load(pluginPath('abi-probe'), {
    name: 'probe-plugin', rootId: 'abi_probe', vmId: 'probe-vm', configuration: 'probe-config', vmConfiguration: 'vm-config',
    httpCallout: callouts,
  });
});

after(async () => {
  for (const e of emulators) {
    for (const c of e.hostCalls) exercised.add(c.name);
    e.close();
  }
  await pools.destroy();
  clusters.close();
  await redis.stop();
});

/** Runs one probe and returns its log lines as {step: 'status=.. value=..'}. */
async function runProbe(name: string, drive?: (s: EmulatedStream) => void): Promise<Record<string, string>> {
  const before = probe.logs.length;
  const s = probe.stream({ properties: { route_name: 'r1' } });
  s.sendRequestHeaders([[':method', 'GET'], [':path', '/probe'], [':authority', 'host'], ['x-probe', name]], drive === undefined);
  drive?.(s);
  s.sendResponseHeaders([[':status', '200']], true);
  s.complete();
  await probe.settle();
  return linesSince(before);
}

function linesSince(index: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of probe.logs.slice(index)) {
    const m = /^(\S+) (status=.*)$/.exec(l.message);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

test('root context: configuration buffers and set_property outside a stream', async () => {
  await probe.settle();
  const lines = Object.fromEntries(probe.logs.map((l) => l.message.split(' status=')));
  assert.equal(lines['root.set_property'], '1', 'NOT_FOUND outside a stream (Envoy)');
});

test('logging, time, log level', async () => {
  const r = await runProbe('time');
  const now = Math.floor(Date.now() / 1000);
  const [, t] = /value=(\d+)/.exec(r['time']!)!;
  assert.ok(Math.abs(Number(t) - now) <= 5, 'u64 nanoseconds since the epoch');
  assert.equal(r['log_level'], 'status=0 value=0');
  assert.equal(r['log'], 'status=0');
  assert.ok(probe.logs.some((l) => l.level === 'warn' && l.message === 'hello from probe'));
  assert.equal(r['log.bad_level'], 'status=2');
});

test('buffers: configuration, clamping, empty results, unknown and unavailable types', async () => {
  const r = await runProbe('config');
  assert.equal(r['buffer.config'], 'status=0 value=probe-config');
  assert.equal(r['buffer.config_slice'], 'status=0 value=obe');
  assert.equal(r['buffer.config_past_end'], 'status=0 value=0/0', 'empty result is (0, 0)');
  assert.equal(r['buffer.vm_config'], 'status=0 value=vm-config');
  assert.equal(r['buffer.status'], 'status=0 value=12/0');
  assert.equal(r['buffer.unknown_type'], 'status=2');
  assert.equal(r['buffer.unavailable'], 'status=1');
  assert.equal(r['buffer.set_readonly'], 'status=2');
});

test('request body: read, slice, status, prepend / append / splice', async () => {
  let bodyAction = '';
  let body = '';
  const r = await runProbe('body', (s) => {
    bodyAction = s.sendRequestBody('hello world', true);
    body = s.requestBody.toString();
  });
  assert.equal(bodyAction, 'continue');
  assert.equal(r['body.size_arg'], 'status=0 value=11');
  assert.equal(r['body.get'], 'status=0 value=hello world');
  assert.equal(r['body.get_slice'], 'status=0 value=llo');
  assert.equal(r['body.status'], 'status=0 value=11');
  assert.equal(r['body.prepend'], 'status=0');
  assert.equal(r['body.append'], 'status=0');
  assert.equal(r['body.splice'], 'status=0');
  assert.equal(r['body.after'], 'status=0 value=<<MID world>>', '(0,0) prepends, start past the end appends, (2,5) replaces 5 bytes');
  assert.equal(body, '<<MID world>>');
});

test('header maps: size, pairs, get, add, replace, remove, bad map, read-only in on_log', async () => {
  const r = await runProbe('headers');
  // Envoy's size: sum of key and value bytes of :method GET :path /probe :authority host x-probe headers
  assert.equal(r['headers.size'], `status=0 value=${7 + 3 + 5 + 6 + 10 + 4 + 7 + 7}`);
  assert.equal(r['headers.pairs'], `status=0 value=${4 + 4 * 10 + 7 + 3 + 5 + 6 + 10 + 4 + 7 + 7}`);
  assert.equal(r['headers.get'], 'status=0 value=headers');
  assert.equal(r['headers.get_missing'], 'status=1');
  assert.equal(r['headers.add'], 'status=0');
  assert.equal(r['headers.add2'], 'status=0 value=one,two');
  assert.equal(r['headers.replace'], 'status=0 value=three');
  assert.equal(r['headers.remove'], 'status=0 value=<1>');
  assert.equal(r['headers.remove_absent'], 'status=0');
  assert.equal(r['headers.bad_map'], 'status=2');
  assert.equal(r['response.headers.get'], 'status=0 value=200');
  assert.equal(r['on_log.request_header'], 'status=0 value=headers');
});

test('set_header_map_pairs replaces the whole map; malformed pairs are BAD_ARGUMENT', async () => {
  const s = probe.stream();
  const before = probe.logs.length;
  s.sendRequestHeaders([[':path', '/orig'], ['x-probe', 'set_pairs'], ['x-gone', '1']], true);
  await probe.settle();
  const r = linesSince(before);
  assert.equal(r['set_pairs'], 'status=0 value=/replaced,1,<1>');
  assert.deepEqual(s.requestHeaders, [[':path', '/replaced'], ['x-only', '1']]);
  assert.equal(r['set_pairs.malformed'], 'status=2');
  s.complete();
});

test('shared data: NOT_FOUND, CAS mismatch, CAS update, scoped by vm_id', async () => {
  const r = await runProbe('shared');
  assert.equal(r['shared.get_missing'], 'status=1');
  assert.equal(r['shared.set'], 'status=0');
  assert.equal(r['shared.get'], 'status=0 value=v1');
  assert.equal(r['shared.set_stale_cas'], 'status=8');
  assert.equal(r['shared.set_cas'], 'status=0');
  assert.equal(r['shared.get_after_cas'], 'status=0 value=v2');
  assert.equal(probe.sharedData('probe-key')?.toString(), 'v2');
  assert.equal(probe.services.sharedData.get('other-vm', 'probe-key'), undefined);
});

test('shared queues: register, resolve, enqueue wakes proxy_on_queue_ready, dequeue, EMPTY, NOT_FOUND', async () => {
  const r = await runProbe('queue');
  assert.equal(r['queue.register'], 'status=0');
  assert.equal(r['queue.resolve'], 'status=0 value=same');
  assert.equal(r['queue.resolve_missing'], 'status=1');
  assert.equal(r['queue.enqueue'], 'status=0');
  assert.equal(r['queue.enqueue_unknown'], 'status=1');
  assert.equal(r['queue.dequeue_unknown'], 'status=1');
  await until(() => probe.logs.some((l) => l.message.startsWith('queue.dequeue_empty')));
  const all = linesSince(0);
  assert.equal(all['queue.ready'], 'status=0 value=item-1 same=yes');
  assert.equal(all['queue.dequeue_empty'], 'status=7');
});

test('metrics: counter, gauge, histogram, and their refusals', async () => {
  const r = await runProbe('metrics');
  assert.equal(r['metric.define_counter'], 'status=0');
  assert.equal(r['metric.increment'], 'status=0');
  assert.equal(r['metric.increment_negative_counter'], 'status=2');
  assert.equal(r['metric.record_counter'], 'status=0');
  assert.equal(r['metric.get_counter'], 'status=0 value=7');
  assert.equal(r['metric.record_gauge'], 'status=0');
  assert.equal(r['metric.decrement_gauge'], 'status=0');
  assert.equal(r['metric.get_gauge'], 'status=0 value=40');
  assert.equal(r['metric.record_histogram'], 'status=0');
  assert.equal(r['metric.get_histogram'], 'status=2');
  assert.equal(r['metric.define_bad_type'], 'status=2');
  assert.equal(r['metric.get_unknown'], 'status=1');
  assert.equal(probe.metric('probe_counter')?.value, 7n);
});

test('properties: plugin identity, request attributes, values set earlier on the stream', async () => {
  const r = await runProbe('properties');
  assert.equal(r['property.plugin_name'], 'status=0 value=probe-plugin');
  assert.equal(r['property.plugin_root_id'], 'status=0 value=abi_probe');
  assert.equal(r['property.plugin_vm_id'], 'status=0 value=probe-vm');
  assert.equal(r['property.request_path'], 'status=0 value=/probe');
  assert.equal(r['property.request_header'], 'status=0 value=properties');
  assert.equal(r['property.missing'], 'status=0 value=<1>');
  assert.equal(r['property.set'], 'status=0 value=custom-value');
  assert.equal(r['property.response_code_before_response'], 'status=1');
  assert.equal(r['property.response_code'], 'status=0 value=c800000000000000', 'response.code is an 8-byte LE integer');
});

test('effective context, proxy_done, get_status, foreign functions, gRPC links, Higress and cpp-host extras', async () => {
  const r = await runProbe('stream');
  assert.equal(r['effective.self'], 'status=0');
  assert.equal(r['effective.unknown'], 'status=2');
  assert.equal(r['done.not_pending'], 'status=1');
  assert.equal(r['status.none'], 'status=1');
  assert.equal(r['foreign.get_log_level'], 'status=0 value=00000000', 'LE u32 trace');
  assert.equal(r['foreign.unknown'], 'status=1');
  assert.equal(r['grpc.call'], 'status=12');
  assert.equal(r['grpc.stream'], 'status=12');
  assert.equal(r['grpc.send'], 'status=1');
  assert.equal(r['grpc.cancel'], 'status=1');
  assert.equal(r['grpc.close'], 'status=1');
  assert.equal(r['higress.inject_encoded_data'], 'status=0');
  assert.equal(r['higress.get_upstream_hosts'], 'status=0 value=0');
  assert.equal(r['higress.set_upstream_override_host'], 'status=0');
  assert.equal(r['cpp_host.pthread_equal'], 'status=0 value=10');
});

test('continue_stream / close_stream reach the stream host after the callback; bad types refused', async () => {
  const s = probe.stream();
  const before = probe.logs.length;
  s.sendRequestHeaders([[':path', '/'], ['x-probe', 'continue']], true);
  await probe.settle();
  const r = linesSince(before);
  assert.equal(r['continue.request'], 'status=0');
  assert.equal(r['continue.downstream'], 'status=12');
  assert.equal(r['continue.bad_type'], 'status=2');
  assert.equal(r['close.response'], 'status=0');
  assert.deepEqual(s.continued, [0]);
  assert.deepEqual(s.closed, [1]);
  s.complete();
});

test('send_local_response: forces stop, a second one is BAD_ARGUMENT', async () => {
  const s = probe.stream();
  const before = probe.logs.length;
  const action = s.sendRequestHeaders([[':path', '/'], ['x-probe', 'local']], true);
  assert.equal(action, 'stop_all', 'StopAll after a local reply even though the plugin returned Continue');
  await probe.settle();
  const r = linesSince(before);
  assert.equal(r['local.first'], 'status=0');
  assert.equal(r['local.second'], 'status=2');
  assert.equal(s.localResponse?.statusCode, 403);
  assert.equal(s.localResponse?.body.toString(), 'denied\n');
  assert.deepEqual(s.localResponse?.headers, [['x-local', 'yes']]);
  assert.equal(s.localResponse?.details, 'probe_local');
  s.complete();
});

test('tick timer per root context: on, then off', async () => {
  await runProbe('tick_on');
  await until(() => probe.logs.some((l) => l.message === 'tick 2'));
  const r = await runProbe('tick_off');
  assert.equal(r['tick.off'], 'status=0');
  const count = probe.logs.filter((l) => l.message.startsWith('tick ')).length;
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(probe.logs.filter((l) => l.message.startsWith('tick ')).length, count, 'no ticks after period 0');
});

test('proxy_http_call: required pseudo-headers, unknown cluster, response headers/body/trailers readable', async () => {
  const before = probe.logs.length;
  const s = probe.stream();
  s.sendRequestHeaders([[':path', '/'], ['x-probe', 'http_call']], true);
  await probe.settle();
  let r = linesSince(before);
  assert.equal(r['http_call.missing_path'], 'status=2');
  assert.equal(r['http_call.unknown_cluster'], 'status=2');
  assert.equal(r['http_call'], 'status=0 value=4', 'HTTP call tokens are 4, 8, ...');
  const call = callouts.calls[0]!;
  assert.equal(call.request.cluster, 'callout-cluster');
  assert.equal(call.request.body.toString(), 'req-body');
  callouts.answer(0, 201, 'callout-body', [], [['grpc-status', '0']]);
  await until(() => probe.logs.some((l) => l.message.startsWith('http_call.response_trailer')));
  r = linesSince(before);
  assert.equal(r['http_call.response'], 'status=0 value=4 headers=1 body=12 trailers=1');
  assert.equal(r['http_call.response_header'], 'status=0 value=201');
  assert.equal(r['http_call.response_body'], 'status=0 value=callout-body');
  assert.equal(r['http_call.response_trailer'], 'status=0 value=0');
  s.complete();
});

test('ABI 0.1.0 legacy functions', async () => {
  const host = await load(pluginPath('abi-0-1-0'), { configuration: 'cfg' });
  const s = host.stream();
  s.sendRequestHeaders([[':path', '/']]);
  const mem = host.plugin.vm.memory;
  assert.equal(mem.getU32(264), 0, 'proxy_get_configuration');
  assert.equal(mem.getU32(276), 0, 'proxy_continue_request');
  assert.equal(mem.getU32(280), 0, 'proxy_continue_response');
  assert.equal(mem.getU32(284), 0, 'proxy_clear_route_cache');
  await host.settle();
  assert.deepEqual(s.continued, [0, 1]);
});

test('Higress Redis imports and the note variant, against a real redis-server', async () => {
  const echo = await load(pluginPath('redis-echo'), { rootId: 'redis_echo', configuration: 'cluster=redis-conf', redis: pools });
  const s = echo.stream();
  s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'ping']], true);
  await until(() => s.localResponse !== undefined);
  assert.equal(s.localResponse!.body.toString(), '+PONG\r\n');
  const variant = await load(pluginPath('redis-variant'), { rootId: 'redis_variant', configuration: 'cluster=redis-conf', redis: pools });
  const v = variant.stream();
  v.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'echo abc']], true);
  await until(() => v.localResponse !== undefined);
  assert.equal(v.localResponse!.body.toString(), '$3\r\nabc\r\n');
});

test('the hostile fixture and the Go import set run here too', async () => {
  const hostile = await load(pluginPath('hostile'), { configuration: 'x' });
  hostile.tick();
  assert.equal(hostile.plugin.failed, undefined);
  await load(pluginPath('go-wasip1-imports'));
});

test('every host function in the table was exercised by a plugin in this suite', () => {
  for (const e of emulators) for (const c of e.hostCalls) exercised.add(c.name);
  const missing = HOST_FUNCTIONS.map((f) => f.name).filter((n) => !exercised.has(n));
  assert.deepEqual(missing, []);
});
