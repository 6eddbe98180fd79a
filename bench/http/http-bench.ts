/**
 * The data plane without plugins against the smallest reasonable Node reverse proxy (node:http in, undici Pool
 * out, headers copied), both as processes of their own behind the same upstream, under wrk, rows interleaved over
 * several rounds; CPU µs per request of each proxy process (utime + stime from /proc) beside qps and p99.
 * The plugin rows are the plugin bench's (bench/go/go-bench.ts). Never pass/fail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { bootstrapJson, TempDir } from '../../test/http/helpers';
import { clockTicks, maxOf, measure, median, minOf, printTable, runWrk, SidecarProcess, type LoadTarget, type Sample } from '../support/load';
import { envNumber } from '../support/env';

const CONNECTIONS = envNumber('PWS_BENCH_HTTP_CONNECTIONS', 16);

/** The upstream in its own process: 200 "ok" to everything. Resolves with its port. */
export function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const code = `const s=require('node:http').createServer((q,r)=>{q.resume();q.on('end',()=>{r.setHeader('content-type','text/plain');r.end('ok')})});s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port));process.on('SIGTERM',()=>process.exit(0));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.once('data', (c: Buffer) => resolve({ port: Number(c.toString().trim()), child }));
    child.on('error', reject);
  });
}

/** The baseline proxy (node:http + undici Pool) in a process of its own, from undici in this repository. */
function startBaselineProxy(upstreamPort: number): Promise<LoadTarget & { child: ChildProcess }> {
  const undici = JSON.stringify(require.resolve('undici'));
  const code = `
const { Pool } = require(${undici});
const pool = new Pool('http://127.0.0.1:${upstreamPort}', { connections: 128, keepAliveTimeout: 60000 });
const server = require('node:http').createServer((req, res) => {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'connection' && k !== 'host') headers[k] = v;
  pool.request({ path: req.url || '/', method: req.method || 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }).then(
    async (up) => {
      const out = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
      res.writeHead(up.statusCode, out);
      for await (const chunk of up.body) res.write(chunk);
      res.end();
    },
    () => { res.writeHead(502); res.end(); },
  );
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.once('data', (c: Buffer) => resolve({ port: Number(c.toString().trim()), pid: child.pid!, child }));
    child.on('error', reject);
  });
}

export async function runHttpBench(options: { quick?: boolean } = {}): Promise<void> {
  const seconds = options.quick ? 1 : envNumber('PWS_BENCH_HTTP_SECONDS', 5);
  const rounds = options.quick ? 3 : envNumber('PWS_BENCH_HTTP_ROUNDS', 5);
  const ticks = clockTicks();
  const upstream = await startUpstream();
  const tmp = new TempDir();
  let baseline: (LoadTarget & { child: ChildProcess }) | undefined;
  let sidecar: SidecarProcess | undefined;
  try {
    baseline = await startBaselineProxy(upstream.port);
    sidecar = await SidecarProcess.start(tmp.write('none.json', bootstrapJson({ filters: [], clusters: [{ name: 'backend', port: upstream.port }] })));
    const targets: Array<[string, LoadTarget]> = [['node:http + undici reverse proxy (baseline)', baseline], ['sidecar, no plugin', sidecar]];
    const wrk = { connections: CONNECTIONS };
    for (const [, t] of targets) await runWrk(`http://127.0.0.1:${t.port}/bench`, options.quick ? 1 : 3, wrk); // warm-up
    const samples: Sample[][] = targets.map(() => []);
    for (let r = 0; r < rounds; r++) for (const [i, [, t]] of targets.entries()) samples[i]!.push(await measure(t, '/bench', seconds, ticks, wrk));
    console.log(`HTTP GET through one proxy process, ${rounds} rounds interleaved, ${seconds} s per row and round, wrk -t1 -c${CONNECTIONS}; CPU = run time of all that process's threads (/proc schedstat) / requests`);
    const baseCpu = median(samples[0]!.map((s) => s.cpuUsPerRequest));
    const baseQps = median(samples[0]!.map((s) => s.qps));
    printTable(
      ['target', 'CPU µs/req min', 'median', 'max', 'vs baseline', 'qps min', 'median', 'max', 'vs baseline', 'p99 ms median', 'failed/requests'],
      targets.map(([name], i) => {
        const cpu = samples[i]!.map((s) => s.cpuUsPerRequest);
        const qps = samples[i]!.map((s) => s.qps);
        return [
          name, minOf(cpu).toFixed(1), median(cpu).toFixed(1), maxOf(cpu).toFixed(1), `${(median(cpu) / baseCpu).toFixed(2)}x`,
          minOf(qps).toFixed(0), median(qps).toFixed(0), maxOf(qps).toFixed(0), `${(median(qps) / baseQps).toFixed(2)}x`,
          (median(samples[i]!.map((s) => s.p99Us)) / 1000).toFixed(2),
          `${samples[i]!.reduce((a, s) => a + s.failed, 0)}/${samples[i]!.reduce((a, s) => a + s.requests, 0)}`,
        ];
      }),
    );
    console.log('(no goal: the reference the plugin rows of `bench go` are added to; CPU vs baseline above 1.00x is what the data plane costs beyond a plain proxy)');
  } finally {
    await sidecar?.stop();
    baseline?.child.kill('SIGTERM');
    upstream.child.kill('SIGTERM');
    tmp.cleanup();
  }
}

if (require.main === module) {
  runHttpBench({ quick: process.argv.includes('--quick') }).then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
}

