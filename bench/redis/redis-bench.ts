/**
 * Redis GET throughput and latency through the service layer (RedisPoolManager.call), beside ioredis called
 * directly and a bare net.Socket writing pre-encoded RESP (the ceiling), against one redis-server in one run.
 * `measure()` and `printTable()` are reusable: the plugin-path rows are meant to be added on top of this.
 */
import { connect, type Socket } from 'node:net';
import { Plugin } from '../../src/runtime/plugin';
import type { HostServices } from '../../src/abi/host-services';
import type { StreamHost } from '../../src/abi/stream-state';
import type { HeaderPairs } from '../../src/abi/pairs';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { MetricsRegistry } from '../../src/services/metrics';
import { pluginPath } from '../../test/support/plugins';
import Redis from 'ioredis';
import { RedisPoolManager } from '../../src/redis/pool-manager';
import type { RedisOwner, RedisService } from '../../src/services/redis';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import type { ClusterConfig } from '../../src/upstream/types';
import { RedisServer } from '../../test/support/redis-server';

export interface BenchResult {
  readonly name: string;
  readonly inflight: number;
  readonly ops: number;
  readonly errors: number;
  readonly opsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

/** Called once per operation; must call `done` exactly once when it finishes (with an error if it failed). */
export type IssueFn = (done: (err?: unknown) => void) => void;

/**
 * Keeps `inflight` operations outstanding for `durationMs` and records each one's latency. A short warm-up
 * (10% of the duration, at least 200 ms) runs first and is not counted.
 */
export async function measure(name: string, inflight: number, durationMs: number, issue: IssueFn): Promise<BenchResult> {
  await run(inflight, Math.max(200, durationMs / 10), issue, null);
  const latencies: number[] = [];
  const { ops, errors, elapsedMs } = await run(inflight, durationMs, issue, latencies);
  latencies.sort((x, y) => x - y);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { name, inflight, ops, errors, opsPerSec: (ops / elapsedMs) * 1000, p50Us: pct(0.5), p99Us: pct(0.99) };
}

function run(
  inflight: number,
  durationMs: number,
  issue: IssueFn,
  latencies: number[] | null,
): Promise<{ ops: number; errors: number; elapsedMs: number }> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(durationMs * 1e6));
    let ops = 0;
    let errors = 0;
    let active = inflight;
    const worker = (): void => {
      const t0 = process.hrtime.bigint();
      issue((err) => {
        const t1 = process.hrtime.bigint();
        ops++;
        if (err !== undefined) errors++;
        latencies?.push(Number(t1 - t0) / 1000);
        if (t1 < deadline) worker();
        else if (--active === 0) resolve({ ops, errors, elapsedMs: Number(process.hrtime.bigint() - start) / 1e6 });
      });
    };
    for (let i = 0; i < inflight; i++) worker();
  });
}

/** Prints results as a table; ratios are against the rows named `baseline` and `ceiling` at the same in-flight. */
export function printTable(results: readonly BenchResult[], baseline = 'ioredis', ceiling = 'bare socket'): void {
  const find = (name: string, inflight: number): BenchResult | undefined =>
    results.find((r) => r.name === name && r.inflight === inflight);
  const rows = results.map((r) => {
    const base = find(baseline, r.inflight);
    const top = find(ceiling, r.inflight);
    return [
      r.name,
      String(r.inflight),
      Math.round(r.opsPerSec).toLocaleString('en-US'),
      r.p50Us.toFixed(0),
      r.p99Us.toFixed(0),
      base ? (r.opsPerSec / base.opsPerSec).toFixed(2) : '-',
      top ? (r.opsPerSec / top.opsPerSec).toFixed(2) : '-',
      String(r.errors),
    ];
  });
  const header = ['path', 'in flight', 'ops/s', 'p50 µs', 'p99 µs', `vs ${baseline}`, `vs ${ceiling}`, 'errors'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

/**
 * A bare pipelined socket for a request whose reply has a known fixed length: the ceiling. It batches writes per
 * event-loop iteration like the service does, and frames replies by counting bytes (no RESP scanning at all).
 */
class BareClient {
  private readonly waiting: ((err?: unknown) => void)[] = [];
  private received = 0;
  private outbox: Buffer[] = [];
  private flushScheduled = false;
  private constructor(
    private readonly socket: Socket,
    private readonly replyLength: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      while (this.received >= this.replyLength) {
        this.received -= this.replyLength;
        this.waiting.shift()?.();
      }
    });
  }

  static open(port: number, replyLength: number): Promise<BareClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, noDelay: true });
      s.once('error', reject);
      s.once('connect', () => resolve(new BareClient(s, replyLength)));
    });
  }

  send(bytes: Buffer, done: (err?: unknown) => void): void {
    this.waiting.push(done);
    this.outbox.push(bytes);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const data = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox);
      this.outbox = [];
      this.socket.write(data);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

function staticCluster(name: string, port: number): ClusterConfig {
  return {
    name,
    type: 'STATIC',
    typeDetail: '',
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1000,
    edsServiceName: name,
    loadAssignment: [
      { address: '127.0.0.1', port, health: 'HEALTHY', weight: 1, priority: 0, hostname: '', locality: { region: '', zone: '', subZone: '' } },
    ],
    dnsRefreshRateMs: 5000,
    addedViaApi: false,
    versionInfo: '',
    source: {},
    hash: `bench-${port}`,
  };
}

export interface RedisBenchOptions {
  readonly durationMs?: number;
  readonly inflight?: readonly number[];
}

export async function runRedisBench(options: RedisBenchOptions = {}): Promise<void> {
  const durationMs = options.durationMs ?? 2500;
  const levels = options.inflight ?? [1, 64];
  const server = await RedisServer.start();
  const cm = new ClusterManager();
  const pm = new RedisPoolManager(cm);
  const ioredis = new Redis({ host: server.host, port: server.port, lazyConnect: false });
  let bare: BareClient | undefined;
  try {
    const cluster = 'outbound|6379||bench.static';
    cm.addOrUpdateCluster(staticCluster(cluster, server.port));
    const owner: RedisOwner = { label: 'bench' };
    pm.init(owner, { upstream: `${cluster}?buffer_flush_timeout=3&max_buffer_size_before_flush=1024`, username: '', password: '', timeoutMs: 1000 });
    await ioredis.set('bench:key', 'value-0123456789');
    const getQuery = Buffer.from('*2\r\n$3\r\nget\r\n$9\r\nbench:key\r\n');
    const replyLength = Buffer.byteLength('$16\r\nvalue-0123456789\r\n');
    bare = await BareClient.open(server.port, replyLength);
    const b = bare;

    // The plugin path: a real AssemblyScript plugin (redis-echo) importing the Higress ABI; each operation is a
    // whole HTTP stream: context create, request headers (RESP encoding in the guest, proxy_redis_call), the
    // reply through proxy_on_redis_call_response and buffer 9, a local response, then log/done/delete.
    // Replies on one connection come back in order, so a FIFO of `done`s, run after the guest's callback
    // returned, times each plugin-issued call end to end (issue -> guest callback done).
    const completions: Array<(err?: unknown) => void> = [];
    const timedRedis: RedisService = {
      init: (owner, request) => pm.init(owner, request),
      release: (owner) => pm.release(owner),
      call: (owner, upstream, query, onReply) =>
        pm.call(owner, upstream, query, (reply) => {
          onReply(reply);
          completions.shift()?.(reply.ok ? undefined : reply.error);
        }),
    };
    const services: HostServices = {
      sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(), metrics: new MetricsRegistry(),
      redis: pm, logLevel: () => 2,
    };
    const sdkPlugin = await Plugin.load(pluginPath('redis-echo'), {
      name: 'bench', rootId: 'redis_echo',
      configuration: `cluster=${cluster}?buffer_flush_timeout=3&max_buffer_size_before_flush=1024\ntimeout=1000`,
    }, { services });
    // The host's own cost: a .wat plugin that does nothing but the Redis round trip (no guest GC).
    cm.addOrUpdateCluster(staticCluster('bench-cluster', server.port));
    const minPlugin = await Plugin.load(pluginPath('redis-min'), { name: 'bench-min' }, { services });
    const tickPlugin = await Plugin.load(pluginPath('redis-min'), { name: 'bench-tick' }, { services: { ...services, redis: timedRedis } });
    const tickGet = (done: (err?: unknown) => void): void => {
      completions.push(done);
      tickPlugin.vm.callGuest(tickPlugin.root, 'proxy_on_tick', tickPlugin.root.id);
    };
    const pluginGet = (plugin: Plugin, headers: HeaderPairs) => (done: (err?: unknown) => void): void => {
      const host: StreamHost = {
        continueStream: () => {},
        closeStream: () => {},
        sendLocalResponse: (r) => {
          stream.finish();
          done(r.body.length === replyLength ? undefined : new Error(`unexpected reply ${r.body.toString()}`));
        },
        property: () => undefined,
      };
      const stream = plugin.createStream(host)!;
      stream.requestHeaders(headers.map(([k, v]): [string, string] => [k, v]), true);
    };
    const sdkGet = pluginGet(sdkPlugin, [[':path', '/'], ['x-redis-cmd', 'get bench:key']]);
    const minGet = pluginGet(minPlugin, [[':path', '/']]);

    const results: BenchResult[] = [];
    for (const inflight of levels) {
      results.push(await measure('plugin-issued GET (.wat, root context)', inflight, durationMs, tickGet));
      results.push(await measure('plugin .wat (host path, whole stream)', inflight, durationMs, minGet));
      results.push(await measure('plugin AssemblyScript SDK (whole stream)', inflight, durationMs, sdkGet));
      results.push(
        await measure('service (RedisPoolManager)', inflight, durationMs, (done) => {
          const out = pm.call(owner, cluster, getQuery, (reply) => done(reply.ok ? undefined : reply.error));
          if (out.status !== 'ok') done(new Error(out.status));
        }),
      );
      results.push(
        await measure('ioredis', inflight, durationMs, (done) => {
          ioredis.get('bench:key').then(() => done(), done);
        }),
      );
      results.push(await measure('bare socket', inflight, durationMs, (done) => b.send(getQuery, done)));
    }
    console.log(`Redis GET, redis-server ${server.port}, ${durationMs} ms per row, node ${process.version}`);
    printTable(results);
    sdkPlugin.close();
    minPlugin.close();
    tickPlugin.close();
  } finally {
    bare?.close();
    ioredis.disconnect();
    await pm.destroy();
    cm.close();
    await server.stop();
  }
}

if (require.main === module) {
  runRedisBench().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
