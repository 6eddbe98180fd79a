import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { XdsTestServer } from '../testing/xds-control-plane';
import { EDS_TYPE_URL } from '../xds/protos';

/**
 * The test control plane as a small command: serves EDS clusters over ADS (SotW and Delta) and moves their
 * endpoints when told on stdin, to watch a sidecar follow a live endpoint change.
 *
 *   node dist/src/example/control-plane.js --port 18000 --eds 'outbound|6379||redis.default.svc.cluster.local=127.0.0.1:6379'
 *   > eds outbound|6379||redis.default.svc.cluster.local 127.0.0.1:6380     (moves the endpoints, pushes)
 */

export type Endpoints = ReadonlyMap<string, ReadonlyArray<readonly [string, number]>>;

/** `name=host:port[,host:port]` */
export function parseEdsArg(arg: string): [string, Array<[string, number]>] {
  const eq = arg.lastIndexOf('=');
  if (eq <= 0) throw new Error(`--eds expects name=host:port[,host:port], got '${arg}'`);
  return [arg.slice(0, eq), parseEndpoints(arg.slice(eq + 1).split(','))];
}

function parseEndpoints(items: readonly string[]): Array<[string, number]> {
  return items.filter(Boolean).map((hp) => {
    const i = hp.lastIndexOf(':');
    const port = Number(hp.slice(i + 1));
    if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad endpoint '${hp}' (want host:port)`);
    return [hp.slice(0, i), port];
  });
}

export function edsClusterJson(name: string): Record<string, unknown> {
  return {
    name,
    type: 'EDS',
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
  };
}

export function claJson(name: string, endpoints: ReadonlyArray<readonly [string, number]>): Record<string, unknown> {
  return {
    cluster_name: name,
    endpoints: [{ lb_endpoints: endpoints.map(([address, port]) => ({ endpoint: { address: { socket_address: { address, port_value: port } } }, health_status: 'HEALTHY' })) }],
  };
}

/** Starts a control plane serving `clusters` as EDS clusters; `move()` pushes new endpoints for one of them. */
export async function startControlPlane(port: number, clusters: Endpoints): Promise<{ server: XdsTestServer; move(name: string, endpoints: ReadonlyArray<readonly [string, number]>): string }> {
  const server = await XdsTestServer.start({ port });
  const current = new Map(clusters);
  server.setClusters([...current.keys()].map(edsClusterJson));
  server.setEndpoints([...current].map(([n, e]) => claJson(n, e)));
  server.push();
  return {
    server,
    move(name, endpoints) {
      current.set(name, endpoints);
      const version = server.setEndpoints([...current].map(([n, e]) => claJson(n, e)));
      server.push(EDS_TYPE_URL);
      return version;
    },
  };
}

async function main(): Promise<void> {
  const program = new Command('control-plane')
    .description('the test ADS control plane: EDS clusters whose endpoints move on command')
    .requiredOption('--port <port>', 'port to serve ADS on', (v) => Number(v))
    .option('--eds <name=host:port,...>', 'an EDS cluster and its endpoints (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[]);
  program.parse();
  const opts = program.opts<{ port: number; eds: string[] }>();
  const cp = await startControlPlane(opts.port, new Map(opts.eds.map(parseEdsArg)));
  console.log(`control plane on 127.0.0.1:${cp.server.port}; type: eds <cluster> host:port [host:port ...]`);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, name, ...eps] = line.trim().split(/\s+/);
    if (cmd !== 'eds' || !name) return void console.log('usage: eds <cluster> host:port [host:port ...]');
    try {
      console.log(`pushed EDS version ${cp.move(name, parseEndpoints(eps))}`);
    } catch (err) {
      console.log((err as Error).message);
    }
  });
  const stop = (): void => void cp.server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  rl.once('close', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
