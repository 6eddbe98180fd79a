import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sidecar } from '../main';
import { exampleBootstrap, freePort, startRedis, startUpstream } from './example-support';

/**
 * The bundled example (`make run`): starts redis-server on a free loopback port, a small upstream, and the
 * sidecar on examples/static/bootstrap.yaml with the replay-protection example plugin; prints the curl lines
 * that show it working and the admin URL, and runs until Ctrl-C. `--check` makes the same requests itself,
 * prints what came back and exits 0 only if the plugin behaved (CI runs it).
 */

interface Check {
  readonly what: string;
  readonly headers: Record<string, string>;
  readonly status: number;
  readonly header?: readonly [string, string];
}

async function selfCheck(base: string): Promise<boolean> {
  const nonce = `example-${process.pid}-${Date.now()}`;
  const checks: Check[] = [
    { what: 'first use of a nonce passes to the upstream', headers: { 'x-nonce': nonce }, status: 200, header: ['x-replay-check', 'passed'] },
    { what: 'the same nonce again is a replay', headers: { 'x-nonce': nonce }, status: 429 },
    { what: 'no nonce at all', headers: {}, status: 400 },
  ];
  let ok = true;
  for (const c of checks) {
    const res = await fetch(base, { headers: c.headers });
    const body = (await res.text()).trim();
    const good = res.status === c.status && (!c.header || res.headers.get(c.header[0]) === c.header[1]);
    ok &&= good;
    console.log(`${good ? 'ok ' : 'BAD'} ${c.what}: ${res.status} ${body}`);
  }
  return ok;
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const dir = mkdtempSync(join(tmpdir(), 'pws-example-'));
  const redis = await startRedis(dir);
  const upstream = await startUpstream();
  const [listenerPort, adminPort] = [await freePort(), await freePort()];
  const bootstrap = exampleBootstrap('static', {
    admin: adminPort, listener: listenerPort, clusters: { app: upstream.port, 'outbound|6379||redis.static': redis.port },
  });
  const configFile = join(dir, 'bootstrap.yaml');
  writeFileSync(configFile, bootstrap);

  let sidecar: Sidecar | undefined;
  const cleanup = async (): Promise<void> => {
    await sidecar?.stop();
    upstream.server.close();
    redis.proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sidecar = await Sidecar.start({ configFile, logLevel: check ? 'warn' : 'info' });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const base = `http://127.0.0.1:${listenerPort}/`;
  if (check) {
    const ok = await selfCheck(base);
    await cleanup();
    process.exit(ok ? 0 : 1);
  }
  console.log(`
proxy-wasm-sidecar example is running
  listener   ${base}  (replay-protection plugin -> upstream on ${upstream.port})
  redis      127.0.0.1:${redis.port}  (cluster outbound|6379||redis.static)
  admin      http://127.0.0.1:${adminPort}/  (try /clusters, /stats/prometheus, /config_dump)
  bootstrap  ${configFile}

Try it:
  curl -i -H 'x-nonce: n-1' ${base}     # 200 from the upstream, x-replay-check: passed
  curl -i -H 'x-nonce: n-1' ${base}     # 429 replay detected (the nonce is in Redis now)
  curl -i ${base}                       # 400 missing x-nonce header

Ctrl-C stops everything.`);
  const stop = (): void => {
    void cleanup().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
