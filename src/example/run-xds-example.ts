import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Sidecar } from '../main';
import { startControlPlane } from './control-plane';
import { exampleBootstrap, freePort, startRedis, startUpstream } from './example-support';

/**
 * The xDS example (`make run-xds`): two redis-servers A and B, the test control plane serving the Redis cluster
 * `outbound|6379||redis.default.svc.cluster.local` over ADS with endpoints on A, and the sidecar on
 * examples/xds/bootstrap.yaml. Press Enter to move the endpoints between A and B and watch new nonces land on
 * the other server. `--check` does it all itself and exits 0 only if the plugin's Redis calls followed the move.
 */

const CLUSTER = 'outbound|6379||redis.default.svc.cluster.local';

async function redisKeys(port: number): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n'));
    let out = '';
    sock.on('data', (d) => {
      out += d.toString();
      sock.end();
    });
    sock.on('close', () => resolve(out.split('\r\n').filter((l) => l.startsWith('replay-protection:')).sort().join(' ')));
  });
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const dir = mkdtempSync(join(tmpdir(), 'pws-xds-example-'));
  const [a, b] = [await startRedis(join(dir)), await startRedis(join(dir))];
  const upstream = await startUpstream();
  const [listenerPort, adminPort, xdsPort] = [await freePort(), await freePort(), await freePort()];
  const cp = await startControlPlane(xdsPort, new Map([[CLUSTER, [['127.0.0.1', a.port] as const]]]));
  const configFile = join(dir, 'bootstrap.yaml');
  writeFileSync(configFile, exampleBootstrap('xds', { admin: adminPort, listener: listenerPort, clusters: { app: upstream.port, 'xds-grpc': xdsPort } }));
  let sidecar: Sidecar | undefined;
  const cleanup = async (): Promise<void> => {
    await sidecar?.stop();
    await cp.server.close();
    upstream.server.close();
    a.proc.kill('SIGTERM');
    b.proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sidecar = await Sidecar.start({ configFile, logLevel: check ? 'error' : 'info' });
    await sidecar.adsClient?.initialized;
  } catch (err) {
    await cleanup();
    throw err;
  }
  const base = `http://127.0.0.1:${listenerPort}/`;
  let onB = false;
  const move = async (): Promise<void> => {
    onB = !onB;
    const target = onB ? b : a;
    const version = cp.move(CLUSTER, [['127.0.0.1', target.port]]);
    await cp.server.waitFor(() => cp.server.requests.some((r) => r.versionInfo === version && r.typeUrl.endsWith('ClusterLoadAssignment')), 10_000, 'EDS ACK');
    console.log(`moved ${CLUSTER} to ${onB ? 'B' : 'A'} (127.0.0.1:${target.port}), EDS version ${version} ACKed`);
  };
  if (check) {
    const r1 = await fetch(base, { headers: { 'x-nonce': 'before-move' } });
    await move();
    const r2 = await fetch(base, { headers: { 'x-nonce': 'after-move' } });
    const [keysA, keysB] = [await redisKeys(a.port), await redisKeys(b.port)];
    console.log(`before the move: ${r1.status}; after: ${r2.status}; keys on A: ${keysA}; keys on B: ${keysB}`);
    const ok = r1.status === 200 && r2.status === 200 && keysA === 'replay-protection:before-move' && keysB === 'replay-protection:after-move';
    await cleanup();
    process.exit(ok ? 0 : 1);
  }
  console.log(`
proxy-wasm-sidecar xDS example is running
  listener       ${base}
  control plane  127.0.0.1:${xdsPort}  (serves ${CLUSTER})
  redis A        127.0.0.1:${a.port}  (current endpoint)
  redis B        127.0.0.1:${b.port}
  admin          http://127.0.0.1:${adminPort}/clusters

  curl -i -H 'x-nonce: n-1' ${base}    # the nonce is stored on the current endpoint
Press Enter to move the cluster's endpoints between A and B; Ctrl-C stops everything.`);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', () => void move().then(async () => console.log(`keys on A: ${await redisKeys(a.port)}\nkeys on B: ${await redisKeys(b.port)}`)));
  const stop = (): void => void cleanup().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
