import { fork } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import { EDS_TYPE_URL, loadEnvoyProtos } from '../../src/xds/protos';
import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { cla, edsCluster } from '../../test/support/xds-fixtures';
import { runGoSotwRow } from './gocp-sotw-bench';
import { runLdsScaleBench } from './lds-scale-bench';
import { envNumber } from '../support/env';

/**
 * 10 000 EDS clusters + 10 000 CLAs (3 endpoints each) over ADS from the test control plane: time from the first
 * response to the last ACK, and the sidecar's RSS. Then, with all of that loaded, 100 single-cluster EDS updates:
 * time from the start of the control plane's push to the ClusterManager's membership event (the event the pools
 * layer hooks), split into the control plane's push and what follows its hand-off to HTTP/2 (the sidecar's share).
 * Goals (issue 13): <= 2 s, <= 300 MB RSS, p50 <= 5 ms. A SotW EDS update necessarily carries all 10 000 CLAs
 * (about 2 MB), a Delta update only the changed one. SotW and Delta runs are interleaved over XDS_BENCH_ROUNDS
 * rounds (default 3), each from a fresh control plane and client; XDS_BENCH_API=GRPC|DELTA_GRPC runs one.
 *
 * The control plane runs in its own process (control-plane-process.ts), so that its work (encoding pushes,
 * decoding 10 000-name ACKs) is not on the sidecar's CPU and its memory is not in the sidecar's RSS;
 * XDS_BENCH_SERVER=inline runs it in the bench's process (RSS then includes it). The child inherits node's flags:
 * `node --cpu-prof` profiles both processes. Then lds-scale-bench.ts (1,000
 * listeners + 1,000 route configurations + 10,000 clusters; XDS_BENCH_SCALE=0 skips it). Then the SotW row against
 * go-control-plane (gocp-sotw-bench.ts; XDS_BENCH_GO=0 skips it).
 */

/** Epoch ms on this machine's clocks, comparable across processes: `performance.timeOrigin + performance.now()`. */
const epochMs = (): number => performance.timeOrigin + performance.now();

/** When the control plane started a push and when it had handed it to HTTP/2, in epoch ms (`epochMs`). */
interface PushTiming {
  readonly startedAt: number;
  readonly endedAt: number;
}

/** The calls the bench makes on the control plane, inline or in its own process. */
interface ControlPlane {
  readonly target: string;
  /** Where it runs, for the output. */
  readonly where: string;
  setClusters(c: Record<string, unknown>[]): Promise<unknown>;
  setEndpoints(c: Record<string, unknown>[]): Promise<unknown>;
  upsert(typeUrl: string, items: Record<string, unknown>[]): Promise<unknown>;
  /** Resolves once the push was handed to HTTP/2, with when it started and ended. */
  push(typeUrl: string): Promise<PushTiming>;
  waitEdsAck(timeoutMs: number): Promise<unknown>;
  /** Resolves once the client answered the last response sent. */
  waitLastReply(timeoutMs: number): Promise<unknown>;
  close(): Promise<unknown>;
}

async function inlineControlPlane(): Promise<ControlPlane> {
  const server = await XdsTestServer.start();
  return {
    target: server.target,
    where: 'in this process; RSS includes it',
    setClusters: async (c) => server.setClusters(c),
    setEndpoints: async (c) => server.setEndpoints(c),
    upsert: async (t, items) => server.upsert(t, items),
    push: async (t) => {
      const startedAt = epochMs();
      server.push(t);
      return { startedAt, endedAt: epochMs() };
    },
    waitEdsAck: (ms) => server.waitFor(() => server.requestsFor(EDS_TYPE_URL).some((r) => r.responseNonce !== ''), ms, 'EDS ACK'),
    waitLastReply: (ms) => server.waitFor(() => server.replyTo(server.lastNonce) !== undefined, ms, 'reply to the last push'),
    close: () => server.close(),
  };
}

/** The control plane in control-plane-process.ts, forked, spoken to over IPC. */
async function processControlPlane(): Promise<ControlPlane> {
  const child = fork(path.join(__dirname, 'control-plane-process.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (m: { id: number; result?: unknown; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) p?.reject(new Error(m.error));
    else p?.resolve(m.result);
  });
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`control plane process exited (${code ?? signal})`));
    pending.clear();
  });
  const call = (op: string, ...args: unknown[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      child.send({ id, op, args });
    });
  const target = String(await call('start'));
  const offset = await clockOffset(async () => Number(await call('clock')));
  return {
    target,
    where: `in its own process, pid ${child.pid}; clocks agree within ${offset.toFixed(2)} ms`,
    setClusters: (c) => call('setClusters', c),
    setEndpoints: (c) => call('setEndpoints', c),
    upsert: (t, items) => call('upsert', t, items),
    push: async (t) => (await call('push', t)) as PushTiming,
    waitEdsAck: (ms) => call('waitEdsAck', ms),
    waitLastReply: (ms) => call('waitLastReply', ms),
    close: async () => {
      await call('close');
      child.disconnect();
      await exited;
    },
  };
}

/**
 * How far apart the two processes' epoch clocks can be, from 20 round trips: the other side read its clock between
 * our send and its reply, so on the best round trip it is off from the midpoint by |offset| plus at most half the
 * round trip. Returns that bound.
 */
async function clockOffset(remoteNow: () => Promise<number>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 20; i++) {
    const t0 = epochMs();
    const remote = await remoteNow();
    const t1 = epochMs();
    best = Math.min(best, Math.abs(remote - (t0 + t1) / 2) + (t1 - t0) / 2);
  }
  return best;
}

type ApiType = 'GRPC' | 'DELTA_GRPC';
const API_LABEL: Record<ApiType, string> = { GRPC: 'SotW', DELTA_GRPC: 'Delta' };
const CLUSTERS = 10_000;
const UPDATES = 100;
/** Issue 13 item 5: one endpoint change applied, p50. */
const UPDATE_GOAL_MS = 5;
/** XDS_BENCH_SERVER=inline: the control plane in the bench's process. */
const INLINE = process.env['XDS_BENCH_SERVER'] === 'inline';

/** One run's update samples, ms. */
interface UpdateSamples {
  /** Push start (control plane) -> membership event (sidecar). */
  readonly endToEnd: number[];
  /** The control plane's synchronous push(): choose, frame, hand to HTTP/2. */
  readonly push: number[];
  /** Hand-off to HTTP/2 -> membership event: transfer, decode, apply (the sidecar's share). */
  readonly sidecar: number[];
  /** Hand-off -> the client's handling starts: HTTP/2 transfer, grpc-js reassembly, decoding the response. */
  readonly arrival: number[];
  /** The client's own handling of each response (arrival -> ACK). */
  readonly handling: number[];
  /** CPU of this process (the sidecar's side) per update, ms. */
  cpuPerUpdateMs: number;
}

export async function runXdsBench(): Promise<void> {
  // XDS_BENCH_API=GRPC or DELTA_GRPC runs one variant (for profiling); XDS_BENCH_ROUNDS (default 3) interleaves them.
  const only = process.env['XDS_BENCH_API'];
  const apis = (['GRPC', 'DELTA_GRPC'] as const).filter((a) => only === undefined || only === a);
  const rounds = envNumber('XDS_BENCH_ROUNDS', 3);
  const all = new Map<ApiType, UpdateSamples[]>(apis.map((a) => [a, []]));
  let earlier = 0;
  for (let r = 1; r <= rounds; r++) for (const api of apis) all.get(api)!.push(await runOnce(api, `round ${r}/${rounds}`, earlier++));
  if (rounds > 1) for (const [api, runs] of all) printUpdates(`${API_LABEL[api]}, all ${runs.length} rounds`, api, runs);
  // The SotW row against go-control-plane (XDS_BENCH_GO=0 skips it; XDS_BENCH_GO_UPDATES, default 30).
  if (only !== 'DELTA_GRPC' && process.env['XDS_BENCH_GO'] !== '0') await runGoSotwRow(envNumber('XDS_BENCH_GO_UPDATES', 30));
  // Issue 11: listeners and route configurations at scale (XDS_BENCH_SCALE=0 skips it).
  if (only === undefined && process.env['XDS_BENCH_SCALE'] !== '0') await runLdsScaleBench();
}

const pct = (v: readonly number[], p: number): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((p / 100) * v.length))]!;
const judged = (v: readonly number[]): string => `p50 ${pct(v, 50).toFixed(2)} ms (goal <= ${UPDATE_GOAL_MS}: ${pct(v, 50) <= UPDATE_GOAL_MS ? 'MET' : 'NOT MET'}), p99 ${pct(v, 99).toFixed(2)} ms`;
const spread = (v: readonly number[]): string => `p50 ${pct(v, 50).toFixed(2)} ms, p99 ${pct(v, 99).toFixed(2)} ms`;

function printUpdates(label: string, api: ApiType, runs: readonly UpdateSamples[]): void {
  const join = (k: 'endToEnd' | 'push' | 'sidecar' | 'arrival' | 'handling'): number[] => runs.flatMap((r) => r[k]);
  const shape = api === 'GRPC' ? `each response carries all ${CLUSTERS} CLAs, ~2 MB` : 'each response carries the changed CLA';
  const cpu = runs.reduce((s, r) => s + r.cpuPerUpdateMs, 0) / runs.length;
  console.log(`xds ${label}: one endpoint change (${shape}), ${join('endToEnd').length} updates:
  push start -> membership event (end to end)           ${judged(join('endToEnd'))}
    control plane's push (choose, frame, hand to HTTP/2) ${spread(join('push'))}
    hand-off -> membership event (the sidecar's share)   ${judged(join('sidecar'))}
      of which hand-off -> response arrived (transfer, reassembly, decode) ${spread(join('arrival'))}
      client's handling of a response (arrival -> ACK)   ${spread(join('handling'))}
    ${INLINE ? 'this process (control plane included)' : 'sidecar process'} CPU per update ${cpu.toFixed(2)} ms; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`);
}

/** `earlier`: how many runs this process made before (their leftovers are in its RSS). */
async function runOnce(apiType: ApiType, round: string, earlier: number): Promise<UpdateSamples> {
  const N = CLUSTERS;
  loadEnvoyProtos();
  const server = INLINE ? await inlineControlPlane() : await processControlPlane();
  const name = (i: number): string => `outbound|6379||redis-${i}.default.svc.cluster.local`;
  const hosts = (i: number, gen: number): [string, number][] => [0, 1, 2].map((k) => [`10.${(i >> 8) & 255}.${i & 255}.${k + 1 + gen * 3}`, 6379]);
  await server.setClusters(Array.from({ length: N }, (_, i) => edsCluster(name(i))));
  const clas = Array.from({ length: N }, (_, i) => cla(name(i), hosts(i, 0)));
  await server.setEndpoints(clas);
  const cm = new ClusterManager();
  const client = new AdsClient({ target: server.target, node: { id: 'bench' }, sink: cm, initialFetchTimeoutMs: 0, apiType });
  const label = `${API_LABEL[apiType]}, ${round}`;
  let firstResponse = 0;
  let lastEdsAck = 0;
  const samples: UpdateSamples = { endToEnd: [], push: [], sidecar: [], arrival: [], handling: [], cpuPerUpdateMs: 0 };
  /** This process's clock when the client's handling of the last EDS response began. */
  let handlingStartedAt = 0;
  let updating = false;
  const rssBefore = process.memoryUsage().rss;
  const sub = client.onEvent((e) => {
    if (e.type === 'connected' && firstResponse === 0) firstResponse = performance.now();
    if (e.type === 'ack' && e.typeUrl === EDS_TYPE_URL) {
      lastEdsAck = performance.now();
      if (!updating) return;
      samples.handling.push(e.handlingMs);
      handlingStartedAt = epochMs() - e.handlingMs;
    }
  });
  try {
    client.start();
    await client.initialized;
    await server.waitEdsAck(30_000);
    const active = [...cm.activeClusters()].length;
    const loadMs = lastEdsAck - firstResponse;
    global.gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    const whose = INLINE ? 'this process, control plane included' : "the sidecar's process alone (control plane not included)";
    const grown = rssMb - rssBefore / 2 ** 20;
    console.log(`xds ${label}: control plane ${server.where}
  ${active} clusters / ${N} CLAs x 3 endpoints: first response -> last ACK ${loadMs.toFixed(0)} ms (goal <= 2000: ${loadMs <= 2000 ? 'MET' : 'NOT MET'})
  RSS of ${whose}: ${rssMb.toFixed(0)} MB (goal <= 300: ${rssMb <= 300 ? 'MET' : 'NOT MET'}; ${grown >= 0 ? '+' : ''}${grown.toFixed(0)} MB in this run${earlier > 0 ? `, after ${earlier} earlier run${earlier > 1 ? 's' : ''} in this process` : ', a fresh process'})`);

    updating = true;
    const cpuBefore = process.cpuUsage();
    for (let u = 0; u < UPDATES; u++) {
      const i = (u * 97) % N;
      clas[i] = cla(name(i), hosts(i, (u % 2) + 1));
      // Only the changed CLA is re-encoded by the control plane; a SotW push still carries all of them.
      await server.upsert(EDS_TYPE_URL, [clas[i]!]);
      const seen = new Promise<number>((resolve) => {
        const d = cm.onEvent((e) => {
          if (e.type === 'membership' && e.cluster.name === name(i)) {
            d.dispose();
            resolve(epochMs());
          }
        });
      });
      const pushed = server.push(EDS_TYPE_URL);
      const seenAt = await seen;
      const timing = await pushed;
      samples.endToEnd.push(seenAt - timing.startedAt);
      samples.push.push(timing.endedAt - timing.startedAt);
      samples.sidecar.push(seenAt - timing.endedAt);
      // Let the control plane take the ACK (10 000 names in SotW) before the next push, so that its handling of
      // this one is not timed as part of the next.
      await server.waitLastReply(10_000);
      samples.arrival.push(handlingStartedAt - timing.endedAt);
    }
    const cpu = process.cpuUsage(cpuBefore);
    samples.cpuPerUpdateMs = (cpu.user + cpu.system) / 1000 / UPDATES;
    printUpdates(label, apiType, [samples]);
    return samples;
  } finally {
    sub.dispose();
    await client.close();
    cm.close();
    await server.close();
  }
}

if (require.main === module) {
  runXdsBench().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
