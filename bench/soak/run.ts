/**
 * Soak (issue 14 item 7): minutes of plugin Redis traffic through a real sidecar while its world misbehaves, with
 * the sidecar's resources sampled throughout. A script, not a test:
 *
 *   node dist/bench/soak/run.js [--minutes 10] [--rate 150] [--sample-seconds 5] ...   (make build plugins first)
 *
 * Parts, each a real process: two redis-servers (A, B); the project's test control plane
 * (dist/src/example/control-plane.js) serving the Redis cluster over ADS (CDS + EDS); the sidecar
 * (bench/soak/sidecar-process.ts: the Sidecar that `run -c` starts) running the redis-gate plugin, which makes one
 * Redis call per request; the load (bench/soak/load-process.ts), a constant rate of requests with fresh nonces.
 * An HTTP upstream answers in this process.
 *
 * Faults, on their own clocks: endpoint flips (EDS moves the cluster A -> B -> A+B -> A ...), control-plane
 * restarts (SIGKILL, down for a while, back on the same port with the current endpoints), Redis kills (SIGKILL of
 * an endpoint in use, restarted on its port after a few seconds).
 *
 * Sampled every few seconds: the sidecar's open file descriptors (/proc/<pid>/fd), RSS (/proc/<pid>/status),
 * guest memory (the linear memory of its plugin VMs), Redis client connections (CLIENT LIST on A and B, minus the
 * sampler's own), and what the load saw.
 *
 * Verdict:
 *  - no growth after warm-up: the samples after the warm-up are cut in thirds; for each metric the last third's
 *    maximum must be <= the first third's maximum * 1.1 + slack (fds 8, RSS 16 MiB, guest memory 64 KiB, Redis
 *    connections 4);
 *  - every request answered: no request without an answer (a client timeout or a connection error); 5xx answers
 *    are counted apart when they fall in a Redis kill window (expected: the plugin answers 503 when Redis is
 *    unreachable), near an endpoint flip or near a control-plane restart, and any other 5xx fails the verdict.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { freePort } from '../../src/common/free-port';
import { pluginPath, REPO_ROOT } from '../../test/support/plugins';
import { RedisServer } from '../../test/support/redis-server';
import type { LoadReport } from './load-process';

const CLUSTER = 'outbound|6379||redis.soak';

interface Options {
  minutes: number;
  rate: number;
  connections: number;
  sampleSeconds: number;
  warmupSeconds: number;
  flipSeconds: number;
  cpRestartSeconds: number;
  cpDownSeconds: number;
  redisKillSeconds: number;
  redisDownSeconds: number;
  timeoutMs: number;
}

interface Sample {
  readonly t: number;
  readonly fds: number;
  readonly rssKiB: number;
  readonly guestKiB: number;
  readonly vms: number;
  readonly failedVms: number;
  readonly redisA: number | undefined;
  readonly redisB: number | undefined;
  readonly requests: number;
  readonly ok: number;
  readonly s503: number;
  readonly otherStatus: number;
  readonly unanswered: number;
}

interface FaultWindow {
  readonly kind: 'redis-kill' | 'flip' | 'cp-restart';
  readonly from: number;
  to: number;
  readonly what: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------- the parts ----------

function startUpstream(): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

class ControlPlane {
  private proc: ChildProcess | undefined;
  constructor(readonly port: number) {}

  async start(endpoints: readonly number[]): Promise<void> {
    const script = join(REPO_ROOT, 'dist', 'src', 'example', 'control-plane.js');
    const proc = spawn(process.execPath, [script, '--port', String(this.port), '--eds', `${CLUSTER}=${endpoints.map((p) => `127.0.0.1:${p}`).join(',')}`], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.proc = proc;
    // Ready once it says where it serves.
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (c: Buffer): void => {
        out += c.toString();
        if (out.includes('control plane on')) {
          proc.stdout!.off('data', onData);
          proc.stdout!.resume();
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`control plane exited (${code}): ${out}`)));
    });
  }

  move(endpoints: readonly number[]): void {
    this.proc?.stdin?.write(`eds ${CLUSTER} ${endpoints.map((p) => `127.0.0.1:${p}`).join(' ')}\n`);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    proc.kill('SIGKILL');
    await once(proc, 'exit');
  }
}

function bootstrap(upstreamPort: number, cpPort: number): Record<string, unknown> {
  const socket = (port: number): unknown => ({ address: { socket_address: { address: '127.0.0.1', port_value: port } } });
  return {
    node: { id: 'soak-sidecar', cluster: 'soak' },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      listeners: [{
        name: 'soak',
        ...(socket(0) as object),
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'soak',
              route_config: { name: 'r', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '5s' } }] }] },
              http_filters: [
                {
                  name: 'envoy.filters.http.wasm',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
                    config: {
                      name: 'replay-protection',
                      root_id: 'redis_gate',
                      vm_config: { vm_id: 'soak', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath('redis-gate') } } },
                      configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: `cluster=${CLUSTER}\nttl=30\ntimeout=1000\nprefix=soak` },
                    },
                  },
                },
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
            },
          }],
        }],
      }],
      clusters: [
        { name: 'app', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'app', endpoints: [{ lb_endpoints: [{ endpoint: socket(upstreamPort) }] }] } },
        {
          name: 'xds-grpc', type: 'STATIC', connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: socket(cpPort) }] }] },
        },
      ],
    },
  };
}

// ---------- sampling ----------

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Client connections of a redis-server (CLIENT LIST lines), not counting this probe's own; undefined when down. */
function redisClients(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (v: number | undefined): void => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(2000, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('connect', () => socket.write('CLIENT LIST\r\n'));
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      const m = /^\$(\d+)\r\n/.exec(data);
      if (m && data.length >= m[0].length + Number(m[1]) + 2) {
        const body = data.slice(m[0].length, m[0].length + Number(m[1]));
        done(body.split('\n').filter((l) => l.startsWith('id=')).length - 1);
      }
    });
  });
}

class SidecarChild {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: { guestMemory: number; vms: number; failedVms: number }) => void>();
  private constructor(readonly proc: ChildProcess, readonly port: number) {
    proc.on('message', (msg: { type: string; id: number; guestMemory: number; vms: number; failedVms: number }) => {
      if (msg.type === 'sample') this.waiting.get(msg.id)?.(msg);
      this.waiting.delete(msg.id);
    });
  }

  static async start(configFile: string): Promise<SidecarChild> {
    const proc = fork(join(__dirname, 'sidecar-process.js'), [configFile], { stdio: ['ignore', 2, 2, 'ipc'] });
    const [msg] = (await Promise.race([once(proc, 'message'), once(proc, 'exit').then(() => { throw new Error('the sidecar exited while starting'); })])) as [{ type: string; port: number }];
    return new SidecarChild(proc, msg.port);
  }

  sample(): Promise<{ guestMemory: number; vms: number; failedVms: number }> {
    const id = this.nextId++;
    this.proc.send({ type: 'sample', id });
    return new Promise((resolve, reject) => {
      this.waiting.set(id, resolve);
      setTimeout(() => reject(new Error('the sidecar did not answer a sample within 10 s')), 10_000).unref();
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    await once(this.proc, 'exit');
  }
}

/** Waits until the sidecar serves through the plugin (the EDS cluster warmed, the plugin's Redis reachable). */
async function untilServing(port: number, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < end) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/warm`, { headers: { 'x-nonce': `warm-${Date.now()}-${Math.random()}` } });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = String(res.status);
    } catch (err) {
      last = String(err);
    }
    await sleep(200);
  }
  throw new Error(`the sidecar did not serve through the plugin within ${deadlineMs} ms (last: ${last})`);
}

// ---------- verdict ----------

interface Growth {
  readonly metric: string;
  readonly firstMax: number;
  readonly lastMax: number;
  readonly limit: number;
  readonly ok: boolean;
}

function growth(samples: readonly Sample[], metric: string, get: (s: Sample) => number | undefined, slack: number): Growth {
  const third = Math.max(1, Math.floor(samples.length / 3));
  const max = (xs: readonly Sample[]): number => Math.max(...xs.map(get).filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const firstMax = max(samples.slice(0, third));
  const lastMax = max(samples.slice(samples.length - third));
  const limit = firstMax * 1.1 + slack;
  return { metric, firstMax, lastMax, limit, ok: lastMax <= limit };
}

function overlaps(at: number, w: FaultWindow, graceMs: number): boolean {
  return at < w.to + graceMs && at + 1000 > w.from - 1000;
}

// ---------- main ----------

async function main(): Promise<void> {
  const opts = new Command('soak')
    .option('--minutes <n>', 'duration', Number, 10)
    .option('--rate <n>', 'requests per second', Number, 150)
    .option('--connections <n>', 'client connections', Number, 16)
    .option('--sample-seconds <n>', 'sampling period', Number, 5)
    .option('--warmup-seconds <n>', 'excluded from the growth verdict (default: 10% of the run, at least 20 s)', Number)
    .option('--flip-seconds <n>', 'endpoint flip period', Number, 20)
    .option('--cp-restart-seconds <n>', 'control-plane restart period', Number, 70)
    .option('--cp-down-seconds <n>', 'how long the control plane stays down', Number, 3)
    .option('--redis-kill-seconds <n>', 'Redis kill period', Number, 45)
    .option('--redis-down-seconds <n>', 'how long a killed Redis stays down', Number, 4)
    .option('--timeout-ms <n>', 'a request without an answer after this long is unanswered', Number, 10_000)
    .parse()
    .opts<Options>();
  const durationMs = opts.minutes * 60_000;
  const warmupMs = (opts.warmupSeconds ?? Math.max(20, (durationMs / 1000) * 0.1)) * 1000;

  const tmp = mkdtempSync(join(tmpdir(), 'pws-soak-'));
  const redisA = await RedisServer.start();
  const redisB = await RedisServer.start();
  const upstream = await startUpstream();
  const cp = new ControlPlane(await freePort());
  let endpoints: number[] = [redisA.port];
  await cp.start(endpoints);
  const file = join(tmp, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(bootstrap((upstream.address() as AddressInfo).port, cp.port), null, 1));
  const sidecar = await SidecarChild.start(file);
  const pid = sidecar.proc.pid!;
  await untilServing(sidecar.port, 30_000);
  log(`sidecar pid ${pid} on :${sidecar.port}; redis A :${redisA.port} B :${redisB.port}; control plane :${cp.port}; ${opts.rate} req/s for ${opts.minutes} min`);

  const load = fork(join(__dirname, 'load-process.js'), [`http://127.0.0.1:${sidecar.port}/`, String(opts.rate), String(opts.connections), String(opts.timeoutMs)], {
    stdio: ['ignore', 2, 2, 'ipc'],
  });
  const seconds: LoadReport[] = [];
  load.on('message', (m: LoadReport) => void (m.type === 'second' && seconds.push(m)));

  const t0 = Date.now();
  const windows: FaultWindow[] = [];
  const samples: Sample[] = [];
  let running = true;
  const faults: Promise<void>[] = [];
  const every = (periodMs: number, offsetMs: number, action: () => Promise<void>): void => {
    faults.push((async () => {
      await sleep(offsetMs);
      while (running) {
        await action();
        const next = Date.now() + periodMs;
        while (running && Date.now() < next) await sleep(Math.min(500, next - Date.now()));
      }
    })());
  };

  // Endpoint flips: A -> B -> A+B -> A ...
  const cycle = [[redisB.port], [redisA.port, redisB.port], [redisA.port]];
  let flips = 0;
  every(opts.flipSeconds * 1000, opts.flipSeconds * 1000, async () => {
    endpoints = cycle[flips++ % cycle.length]!;
    const now = Date.now();
    windows.push({ kind: 'flip', from: now, to: now + 2000, what: endpoints.map((p) => (p === redisA.port ? 'A' : 'B')).join('+') });
    cp.move(endpoints);
  });
  // Control-plane restarts.
  every(opts.cpRestartSeconds * 1000, opts.cpRestartSeconds * 500, async () => {
    const w: FaultWindow = { kind: 'cp-restart', from: Date.now(), to: Infinity, what: 'SIGKILL' };
    windows.push(w);
    await cp.kill();
    await sleep(opts.cpDownSeconds * 1000);
    await cp.start(endpoints);
    w.to = Date.now();
  });
  // Redis kills: an endpoint in use.
  let kills = 0;
  every(opts.redisKillSeconds * 1000, opts.redisKillSeconds * 700, async () => {
    const port = endpoints[kills++ % endpoints.length]!;
    const server = port === redisA.port ? redisA : redisB;
    const w: FaultWindow = { kind: 'redis-kill', from: Date.now(), to: Infinity, what: port === redisA.port ? 'A' : 'B' };
    windows.push(w);
    await server.kill('SIGKILL');
    await sleep(opts.redisDownSeconds * 1000);
    await server.restart();
    w.to = Date.now();
  });

  // Sampling.
  let consumed = 0;
  const takeSample = async (): Promise<void> => {
    const [guest, a, b] = await Promise.all([sidecar.sample(), redisClients(redisA.port), redisClients(redisB.port)]);
    const fresh = seconds.slice(consumed);
    consumed = seconds.length;
    let requests = 0, ok = 0, s503 = 0, otherStatus = 0, unanswered = 0;
    for (const s of fresh) {
      unanswered += s.unanswered;
      for (const [status, n] of Object.entries(s.statuses)) {
        requests += n;
        if (status === '200') ok += n;
        else if (status === '503') s503 += n;
        else otherStatus += n;
      }
      requests += s.unanswered;
    }
    const sample: Sample = {
      t: Math.round((Date.now() - t0) / 1000), fds: fdCount(pid), rssKiB: rssKiB(pid), guestKiB: Math.round(guest.guestMemory / 1024), vms: guest.vms,
      failedVms: guest.failedVms, redisA: a, redisB: b, requests, ok, s503, otherStatus, unanswered,
    };
    samples.push(sample);
    log(`t=${sample.t}s fds=${sample.fds} rss=${(sample.rssKiB / 1024).toFixed(1)}MiB guest=${sample.guestKiB}KiB redis=${a ?? 'down'}/${b ?? 'down'} req=${requests} 503=${s503} other=${otherStatus} unanswered=${unanswered}`);
  };
  while (Date.now() - t0 < durationMs) {
    await sleep(Math.min(opts.sampleSeconds * 1000, durationMs - (Date.now() - t0)));
    await takeSample();
  }
  running = false;
  await Promise.all(faults);
  load.send({ type: 'stop' });
  await once(load, 'exit');
  await sleep(200);
  await takeSample();

  // ---------- report ----------
  const table = [
    ['t(s)', 'fds', 'RSS MiB', 'guest KiB', 'VMs', 'redis A', 'redis B', 'requests', '200', '503', 'other', 'unanswered'],
    ...samples.map((s) => [s.t, s.fds, (s.rssKiB / 1024).toFixed(1), s.guestKiB, s.vms - s.failedVms, s.redisA ?? 'down', s.redisB ?? 'down', s.requests, s.ok, s.s503, s.otherStatus, s.unanswered].map(String)),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  console.log(table.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n'));

  const after = samples.filter((s) => s.t * 1000 >= warmupMs);
  const checks = [
    growth(after, 'fds', (s) => s.fds, 8),
    growth(after, 'RSS KiB', (s) => s.rssKiB, 16 * 1024),
    growth(after, 'guest KiB', (s) => s.guestKiB, 64),
    growth(after, 'Redis connections', (s) => (s.redisA ?? 0) + (s.redisB ?? 0), 4),
  ];
  // 5xx and errors by where they fell.
  const byWindow = { 'redis-kill': 0, flip: 0, 'cp-restart': 0, unexpected: 0 };
  let total = 0, ok = 0, unanswered = 0, errors = 0, otherNon5xx = 0;
  const errorCodes = new Map<string, number>();
  for (const s of seconds) {
    unanswered += s.unanswered;
    total += s.unanswered;
    for (const [status, n] of Object.entries(s.statuses)) {
      total += n;
      const code = Number(status);
      if (!Number.isInteger(code)) {
        errors += n;
        errorCodes.set(status, (errorCodes.get(status) ?? 0) + n);
        continue;
      }
      if (code < 500) {
        if (code === 200) ok += n;
        else otherNon5xx += n;
        continue;
      }
      const w = windows.find((x) => x.kind === 'redis-kill' && overlaps(s.at, x, 3000)) ?? windows.find((x) => x.kind !== 'redis-kill' && overlaps(s.at, x, 3000));
      byWindow[w ? w.kind : 'unexpected'] += n;
    }
  }
  const counts = (k: FaultWindow['kind']): number => windows.filter((w) => w.kind === k).length;
  console.log(`\nfaults: ${counts('flip')} endpoint flips, ${counts('cp-restart')} control-plane restarts, ${counts('redis-kill')} Redis kills (${opts.redisDownSeconds} s down each)`);
  console.log(`requests: ${total} (${(total / (durationMs / 1000)).toFixed(0)}/s): ${ok} 200, ${otherNon5xx} other non-5xx, 5xx ${JSON.stringify(byWindow)}, ${errors} connection errors ${JSON.stringify([...errorCodes])}, ${unanswered} unanswered`);
  console.log(`growth after ${warmupMs / 1000} s of warm-up (${after.length} samples; last third's max <= first third's max * 1.1 + slack):`);
  for (const c of checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.metric}: first third max ${c.firstMax}, last third max ${c.lastMax}, limit ${c.limit.toFixed(0)}`);
  const failedVms = Math.max(...samples.map((s) => s.failedVms));
  const answered = unanswered === 0 && errors === 0 && byWindow.unexpected === 0;
  const verdict = checks.every((c) => c.ok) && answered && failedVms === 0 && after.length >= 3;
  console.log(`every request answered: ${answered ? 'yes' : 'NO'}${failedVms > 0 ? `; ${failedVms} plugin VM(s) failed` : ''}`);
  console.log(`VERDICT: ${verdict ? 'PASS' : 'FAIL'}`);

  await sidecar.stop();
  await cp.kill();
  await redisA.stop();
  await redisB.stop();
  await new Promise<void>((r) => upstream.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
  process.exitCode = verdict ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(2);
});
