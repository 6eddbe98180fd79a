/**
 * TCP proxy cost: the sidecar's tcp_proxy (no filter, an SDK-free .wat network filter, the Go SDK network example)
 * against a bare node:net pipe, measured in one run with the rows interleaved (A B C D, A B C D, ...) over several
 * rounds so drift on a shared machine spreads over every row. Each proxy is a process of its own (CPU = utime +
 * stime from /proc/<pid>/stat); the load generator and the upstream (a byte sink, or an echo) run in this process.
 *   throughput: CONNECTIONS connections each stream their share of MB_PER_SAMPLE to a sink; MB/s and CPU ms per MB
 *   request/response: CONNECTIONS connections each send a 64-byte message and wait for its echo, back to back;
 *                     requests/s and CPU µs per request
 * Never pass/fail. Standalone: `node dist/bench/tcp/run.js [--quick]`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { clockTicks, cpuSeconds, maxOf, median, minOf, printTable } from '../support/load';
import type { NetworkFilterSpec } from '../../test/tcp/helpers';
import type { ProxyChildRequest } from './proxy-child';

export interface TcpBenchOptions {
  readonly quick?: boolean;
}

interface Row {
  readonly name: string;
  readonly mode: ProxyChildRequest['mode'];
  readonly filters: readonly NetworkFilterSpec[];
}

const ROWS: readonly Row[] = [
  { name: 'bare node:net pipe', mode: 'net-pipe', filters: [] },
  { name: 'sidecar tcp_proxy, no filter', mode: 'sidecar', filters: [] },
  { name: '+ .wat no-op network filter (tcp-noop)', mode: 'sidecar', filters: [{ plugin: 'tcp-noop', name: 'wat-noop', rootId: '' }] },
  { name: '+ Go SDK network example (go/tcp-network)', mode: 'sidecar', filters: [{ plugin: 'go/tcp-network', name: 'go-network', rootId: '' }] },
];

const CONNECTIONS = 4;
const MESSAGE = Buffer.alloc(64, 'm');

class ProxyChild {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(req: ProxyChildRequest): Promise<ProxyChild> {
    const child = spawn(process.execPath, [join(__dirname, 'proxy-child.js'), JSON.stringify(req)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const rl = createInterface({ input: child.stdout! });
    const [line] = (await once(rl, 'line')) as [string];
    rl.close();
    return new ProxyChild(child, (JSON.parse(line) as { port: number }).port);
  }

  cpu(ticks: number): number {
    return cpuSeconds(this.child.pid!, ticks);
  }

  async stop(): Promise<void> {
    this.child.stdin!.end();
    if (this.child.exitCode === null) await once(this.child, 'exit');
  }
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Counts bytes and reports when `expect` arrived. */
class Sink {
  received = 0;
  private waiter: { bytes: number; resolve: () => void } | undefined;
  readonly server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      this.received += d.length;
      if (this.waiter && this.received >= this.waiter.bytes) {
        this.waiter.resolve();
        this.waiter = undefined;
      }
    });
    s.on('error', () => {});
  });

  until(bytes: number): Promise<void> {
    if (this.received >= bytes) return Promise.resolve();
    return new Promise((resolve) => (this.waiter = { bytes, resolve }));
  }
}

function connectTo(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, noDelay: true });
  s.on('error', () => {});
  return once(s, 'connect').then(() => s);
}

interface ThroughputSample {
  readonly mbPerSecond: number;
  readonly cpuMsPerMb: number;
}

async function throughput(proxy: ProxyChild, sink: Sink, megabytes: number, ticks: number): Promise<ThroughputSample> {
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => connectTo(proxy.port)));
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const perConnection = Math.ceil((megabytes * 1024 * 1024) / CONNECTIONS / chunk.length);
  const total = perConnection * chunk.length * CONNECTIONS;
  const target = sink.received + total;
  const cpu0 = proxy.cpu(ticks);
  const t0 = process.hrtime.bigint();
  await Promise.all(sockets.map(async (s) => {
    for (let i = 0; i < perConnection; i++) if (!s.write(chunk)) await once(s, 'drain');
  }));
  await sink.until(target);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = proxy.cpu(ticks) - cpu0;
  for (const s of sockets) s.destroy();
  const mb = total / (1024 * 1024);
  return { mbPerSecond: mb / seconds, cpuMsPerMb: (cpu * 1000) / mb };
}

interface RequestSample {
  readonly rps: number;
  readonly cpuUsPerRequest: number;
}

async function requestResponse(proxy: ProxyChild, seconds: number, ticks: number): Promise<RequestSample> {
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => connectTo(proxy.port)));
  let requests = 0;
  const deadline = Date.now() + seconds * 1000;
  const cpu0 = proxy.cpu(ticks);
  const t0 = process.hrtime.bigint();
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      while (got >= MESSAGE.length) {
        got -= MESSAGE.length;
        requests++;
        if (Date.now() >= deadline) {
          resolve();
          return;
        }
        s.write(MESSAGE);
      }
    });
    s.write(MESSAGE);
  })));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = proxy.cpu(ticks) - cpu0;
  for (const s of sockets) s.destroy();
  return { rps: requests / wall, cpuUsPerRequest: (cpu * 1e6) / requests };
}

export async function runTcpBench(options: TcpBenchOptions = {}): Promise<void> {
  const rounds = 3;
  const megabytes = options.quick ? 32 : 128;
  const seconds = options.quick ? 1 : 2;
  const ticks = clockTicks();
  const sink = new Sink();
  const sinkPort = await listen(sink.server);
  const echo = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => s.write(d));
    s.on('error', () => {});
  });
  const echoPort = await listen(echo);
  const sinkProxies: ProxyChild[] = [];
  const echoProxies: ProxyChild[] = [];
  for (const row of ROWS) {
    sinkProxies.push(await ProxyChild.start({ mode: row.mode, upstreamPort: sinkPort, filters: row.filters }));
    echoProxies.push(await ProxyChild.start({ mode: row.mode, upstreamPort: echoPort, filters: row.filters }));
  }
  const tput: ThroughputSample[][] = ROWS.map(() => []);
  const rr: RequestSample[][] = ROWS.map(() => []);
  try {
    // Warm-up (JIT, VMs): one short sample per row, not counted.
    for (let i = 0; i < ROWS.length; i++) {
      await throughput(sinkProxies[i]!, sink, 8, ticks);
      await requestResponse(echoProxies[i]!, 0.3, ticks);
    }
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < ROWS.length; i++) tput[i]!.push(await throughput(sinkProxies[i]!, sink, megabytes, ticks));
      for (let i = 0; i < ROWS.length; i++) rr[i]!.push(await requestResponse(echoProxies[i]!, seconds, ticks));
    }
  } finally {
    for (const p of [...sinkProxies, ...echoProxies]) await p.stop();
    sink.server.close();
    echo.close();
  }
  console.log(`TCP proxy, ${rounds} rounds, rows interleaved; ${CONNECTIONS} connections; node ${process.version}; CPU = run time of all the proxy process's threads (/proc schedstat)`);
  console.log(`\nthroughput: ${megabytes} MB per sample streamed to a sink (64 KiB writes)`);
  const baseMb = median(tput[0]!.map((s) => s.mbPerSecond));
  const baseCpuMb = median(tput[0]!.map((s) => s.cpuMsPerMb));
  printTable(
    ['row', 'MB/s min', 'median', 'max', 'vs pipe', 'CPU ms/MB min', 'median', 'max', 'vs pipe'],
    ROWS.map((row, i) => {
      const mbs = tput[i]!.map((s) => s.mbPerSecond);
      const cpu = tput[i]!.map((s) => s.cpuMsPerMb);
      return [row.name, minOf(mbs).toFixed(0), median(mbs).toFixed(0), maxOf(mbs).toFixed(0), `${(median(mbs) / baseMb).toFixed(2)}x`,
        minOf(cpu).toFixed(2), median(cpu).toFixed(2), maxOf(cpu).toFixed(2), `${(median(cpu) / baseCpuMb).toFixed(2)}x`];
    }),
  );
  console.log(`\nrequest/response: ${MESSAGE.length}-byte messages echoed, one outstanding per connection, ${seconds} s per sample`);
  const baseRps = median(rr[0]!.map((s) => s.rps));
  const baseCpuReq = median(rr[0]!.map((s) => s.cpuUsPerRequest));
  printTable(
    ['row', 'req/s min', 'median', 'max', 'vs pipe', 'CPU µs/req min', 'median', 'max', 'vs pipe'],
    ROWS.map((row, i) => {
      const rps = rr[i]!.map((s) => s.rps);
      const cpu = rr[i]!.map((s) => s.cpuUsPerRequest);
      return [row.name, minOf(rps).toFixed(0), median(rps).toFixed(0), maxOf(rps).toFixed(0), `${(median(rps) / baseRps).toFixed(2)}x`,
        minOf(cpu).toFixed(1), median(cpu).toFixed(1), maxOf(cpu).toFixed(1), `${(median(cpu) / baseCpuReq).toFixed(2)}x`];
    }),
  );
  console.log('(the load generator and upstream share this process and the machine: absolute figures move with load; compare rows)');
}
