/**
 * HTTP data-plane throughput and p99 latency: the sidecar with no plugin, a no-op plugin and the add-header
 * plugin, beside a minimal Node reverse proxy (node:http + undici Pool) measured in the same run. The load
 * generator (autocannon) and the upstream each run in their own process, so the process under test only
 * proxies. Never pass/fail; figures depend on the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Pool } from 'undici';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { REPO_ROOT } from '../../test/support/plugins';
import { bootstrapJson, TempDir, type FilterSpec } from '../../test/http/helpers';

const DURATION_S = Number(process.env['PWS_BENCH_HTTP_SECONDS'] ?? 5);
const CONNECTIONS = Number(process.env['PWS_BENCH_HTTP_CONNECTIONS'] ?? 32);

export interface HttpBenchRow {
  readonly name: string;
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

interface AutocannonJson {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}

/** autocannon in a child process (so it does not share the event loop with the proxy), JSON result. */
function autocannon(url: string, seconds: number): Promise<AutocannonJson> {
  const bin = join(REPO_ROOT, 'node_modules', 'autocannon', 'autocannon.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, '--json', '-c', String(CONNECTIONS), '-d', String(seconds), url], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited ${code}`));
      try {
        resolve(JSON.parse(out) as AutocannonJson);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** The upstream in its own process: 200 "ok" to everything. Resolves with its port. */
export function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const code = `const s=require('node:http').createServer((q,r)=>{q.resume();q.on('end',()=>{r.setHeader('content-type','text/plain');r.end('ok')})});s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port));process.on('SIGTERM',()=>process.exit(0));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.once('data', (c: Buffer) => resolve({ port: Number(c.toString().trim()), child }));
    child.on('error', reject);
  });
}

/** The baseline: the smallest reasonable Node reverse proxy (node:http in, undici Pool out, headers copied). */
async function startBaselineProxy(upstreamPort: number): Promise<{ server: Server; pool: Pool; url: string }> {
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, keepAliveTimeout: 60_000 });
  const server = createServer((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'connection' && k !== 'host') headers[k] = v;
    pool.request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }).then(
      async (up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
        res.writeHead(up.statusCode, out);
        for await (const chunk of up.body) res.write(chunk);
        res.end();
      },
      () => { res.writeHead(502); res.end(); },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, pool, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bench` };
}

async function measure(name: string, url: string): Promise<HttpBenchRow> {
  await autocannon(url, 1); // warm-up: connections, JIT, pools
  const r = await autocannon(url, DURATION_S);
  return { name, requestsPerSec: r.requests.average, p50Ms: r.latency.p50, p99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

export async function runHttpBench(): Promise<void> {
  const upstream = await startUpstream();
  const tmp = new TempDir();
  const rows: HttpBenchRow[] = [];
  try {
    const baseline = await startBaselineProxy(upstream.port);
    try {
      rows.push(await measure('node:http + undici reverse proxy (baseline)', baseline.url));
    } finally {
      baseline.server.closeAllConnections();
      await new Promise<void>((r) => baseline.server.close(() => r()));
      await baseline.pool.close();
    }
    const variants: Array<[string, FilterSpec[]]> = [
      ['sidecar, no plugin', []],
      ['sidecar, no-op plugin (AssemblyScript SDK)', [{ plugin: 'noop', name: 'noop', rootId: 'noop' }]],
      ['sidecar, no-op plugin (.wat, no SDK)', [{ plugin: 'noop-min', name: 'noop-min', rootId: '' }]],
      ['sidecar, add-header plugin', [{ plugin: 'add-header', name: 'add', rootId: 'add_header' }]],
    ];
    for (const [name, filters] of variants) {
      const file = tmp.write(`${name.replace(/\W+/g, '-')}.json`, bootstrapJson({ filters, clusters: [{ name: 'backend', port: upstream.port }] }));
      const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 1000 });
      try {
        rows.push(await measure(name, `http://127.0.0.1:${sidecar.listeners[0]!.port}/bench`));
      } finally {
        await sidecar.stop();
      }
    }
  } finally {
    upstream.child.kill('SIGTERM');
    tmp.cleanup();
  }
  const base = rows[0]!;
  console.log(`HTTP GET through one proxy process, ${CONNECTIONS} connections, ${DURATION_S} s each (autocannon in its own process)`);
  console.log(`${'target'.padEnd(46)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'vs baseline'.padStart(12)} ${'errors'.padStart(7)}`);
  for (const r of rows) {
    const ratio = r === base ? '1.00x' : `${(r.requestsPerSec / base.requestsPerSec).toFixed(2)}x`;
    console.log(`${r.name.padEnd(46)} ${r.requestsPerSec.toFixed(0).padStart(9)} ${String(r.p50Ms).padStart(7)} ${String(r.p99Ms).padStart(7)} ${ratio.padStart(12)} ${String(r.errors + r.non2xx).padStart(7)}`);
  }
}

if (require.main === module) {
  runHttpBench().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
}
