/** Shared bits for the redis tests: RESP encoding as wasm-go does it, and promise wrappers. */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import type { RedisReply } from '../../src/services/redis';
import type { ClusterConfig, HostSpec } from '../../src/upstream/types';

/** A command as wasm-go encodes it: an array of bulk strings, command name lower-cased, args fmt.Sprint-ed. */
export function resp(command: string, ...args: (string | number | Buffer)[]): Buffer {
  const all: Buffer[] = [Buffer.from(command.toLowerCase()), ...args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(String(a))))];
  const parts: Buffer[] = [Buffer.from(`*${all.length}\r\n`)];
  for (const a of all) parts.push(Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

export function text(reply: RedisReply): string {
  if (!reply.ok) throw new Error(`expected a reply, got failure ${(reply.error as { code?: string }).code ?? reply.error.message}`);
  return reply.bytes.toString('latin1');
}

export function errorCode(reply: RedisReply): string {
  if (reply.ok) throw new Error(`expected a failure, got ${JSON.stringify(reply.bytes.toString('latin1').slice(0, 80))}`);
  return (reply.error as { code?: string }).code ?? 'none';
}

export function hostSpec(address: string, port: number): HostSpec {
  return {
    address,
    port,
    health: 'HEALTHY',
    weight: 1,
    priority: 0,
    hostname: '',
    locality: { region: '', zone: '', subZone: '' },
  };
}

/** A ClusterConfig for tests: STATIC with `endpoints`, or EDS (feed hosts with setAssignment(name, ...)). */
export function clusterConfig(
  name: string,
  endpoints: readonly (readonly [string, number])[],
  overrides: Partial<Omit<ClusterConfig, 'hash' | 'name'>> = {},
): ClusterConfig {
  const base = {
    name,
    type: 'STATIC' as const,
    typeDetail: '',
    lbPolicy: 'ROUND_ROBIN' as const,
    connectTimeoutMs: 1000,
    edsServiceName: name,
    loadAssignment: endpoints.map(([a, p]) => hostSpec(a, p)),
    dnsRefreshRateMs: 5000,
    addedViaApi: true,
    versionInfo: '1',
    source: {},
    ...overrides,
  };
  return { ...base, hash: JSON.stringify([base.type, base.typeDetail, base.lbPolicy, base.connectTimeoutMs, base.edsServiceName, base.loadAssignment]) };
}

/** The fixed-window rate-limit script of Higress's cluster-key-rate-limit: returns [threshold, current, ttl]. */
export const RATE_LIMIT_SCRIPT = `
local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
    redis.call('set', KEYS[1], ARGV[1] - 1, 'EX', ARGV[2])
    return {ARGV[1], ARGV[1] - 1, ARGV[2]}
end
return {ARGV[1], redis.call('incrby', KEYS[1], -1), ttl}
`;

const BLACKHOLE_PY =
  "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nsys.stdout.write(str(s.getsockname()[1]))\nsys.stdout.flush()\ntime.sleep(600)\n";

/** A loopback port where a connect never completes; close() releases it. */
export interface Blackhole {
  readonly port: number;
  close(): void;
}

/**
 * A socket with listen(0) that never accepts, its accept queue filled: the kernel then drops further SYNs, so a
 * connect stays pending until the client's connect timeout. Node's net.Server always accepts, hence python3;
 * resolves null when python3 is not available.
 */
export async function startBlackhole(): Promise<Blackhole | null> {
  const py = spawn('python3', ['-c', BLACKHOLE_PY], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve) => {
    py.once('error', () => resolve(0));
    py.once('exit', () => resolve(0));
    py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString())));
  });
  if (!port) return null;
  const fillers: Socket[] = [];
  // Fill the accept queue until a connect no longer completes (the filler that did not connect stays pending too).
  for (let i = 0; i < 8; i++) {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    fillers.push(s);
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 150);
      s.once('connect', () => (clearTimeout(timer), resolve(true)));
    });
    if (!ok) break;
  }
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      py.kill('SIGKILL');
    },
  };
}
