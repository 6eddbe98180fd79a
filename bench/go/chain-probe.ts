/**
 * The wasm path of the data plane without sockets: in a process of its own, `count` streams back to back through a
 * real ActiveStream (the filter chain, route cache, attributes) with one plugin, a real RouteTable, and sinks that
 * answer at once (the router replies 200 "ok" with the headers undici gives the listener). Beside the sidecar row
 * it isolates what the plugin, the host functions and the stream plumbing cost from socket and HTTP parsing work,
 * with little noise: a figure to optimise the host path against (before/after in one build), not a request cost.
 *
 *   node --expose-gc dist/bench/go/chain-probe.js '{"file":"build/plugins/go/add-header.wasm","rootId":"","configuration":"{\"value\":\"v1\"}","count":20000}'
 * A file of '' runs the chain with no plugin.
 */
import { ActiveStream, type DownstreamSink, type RouterSink, type StreamInfo } from '../../src/http/active-stream';
import { RouteTable } from '../../src/http/route-table';
import { parseRouteConfiguration } from '../../src/http/listener-config';
import type { HeaderPairs } from '../../src/abi/pairs';
import { Plugin } from '../../src/runtime/plugin';
import { silentLogger } from '../../src/common/logger';
import { probeServices } from './vm-probe';

export interface ChainProbeRequest {
  readonly file: string;
  readonly rootId: string;
  readonly configuration: string;
  readonly count: number;
  /** Count host calls per stream instead of timing (an observer on every call). */
  readonly countCalls?: boolean;
}

export interface ChainProbeResult {
  /** Process CPU (all threads) per stream, µs. */
  readonly cpuUsPerStream: number;
  /** Guest linear memory after the run, bytes (0 without a plugin). */
  readonly guestMemoryBytes: number;
  /** With countCalls: host calls per stream, by function. */
  readonly callsPerStream?: Record<string, number>;
}

const ROUTES = new RouteTable(parseRouteConfiguration({
  name: 'local_route',
  virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
}, 'route_config'));

function info(): StreamInfo {
  const now = Date.now();
  return {
    startTime: new Date(now), startNs: BigInt(now) * 1_000_000n,
    sourceAddress: '127.0.0.1', sourcePort: 40000, destinationAddress: '127.0.0.1', destinationPort: 10000,
    listenerName: 'ingress', connectionId: 1, protocol: 'HTTP/1.1',
    requestId: '', hasRoute: false, routeName: '', clusterName: '', virtualHostName: '', upstreamHost: '',
    upstreamTransportFailureReason: '', responseCode: 0, responseCodeDetails: '', responseFlags: [],
    requestBytes: 0, responseBytes: 0, durationNs: undefined,
  };
}

export async function probeChain(req: ChainProbeRequest): Promise<ChainProbeResult> {
  const calls = new Map<string, number>();
  const services = req.countCalls ? { ...probeServices(), onHostCall: (fn: string) => void calls.set(fn, (calls.get(fn) ?? 0) + 1) } : probeServices();
  const plugin = req.file
    ? await Plugin.load(req.file, { name: 'probe', rootId: req.rootId, configuration: req.configuration }, { services })
    : undefined;
  const plugins = plugin ? [plugin] : [];
  const node = { id: 'bench', cluster: 'bench' };
  const logger = silentLogger();
  const one = (): void => {
    const stream = new ActiveStream({ plugins, logger, node, routes: ROUTES, info: info() });
    const headers = stream.requestHeaders;
    headers.push(
      [':authority', '127.0.0.1:10000'], [':path', '/bench'], [':method', 'GET'], [':scheme', 'http'],
      ['user-agent', 'wrk'], ['x-request-id', '9b1d6f1e-5d0c-4c5e-9d8e-0f1a2b3c4d5e'], ['x-forwarded-proto', 'http'],
    );
    stream.route();
    let done = false;
    const router: RouterSink = {
      headers: () => {
        stream.info.upstreamHost = '127.0.0.1:8080';
        stream.info.responseCodeDetails = 'via_upstream';
        const response: HeaderPairs = [[':status', '200'], ['content-type', 'text/plain'], ['date', 'Tue, 02 Dec 2025 00:00:00 GMT'], ['content-length', '2'], ['x-envoy-upstream-service-time', '1']];
        stream.encodeHeaders(response, false);
        stream.encodeData(Buffer.from('ok'), true);
      },
      data: () => {},
      trailers: () => {},
      abort: () => {},
    };
    const downstream: DownstreamSink = {
      headersSent: false,
      headers: () => {},
      data: (_c, eos) => { if (eos) done = true; },
      trailers: () => {},
      reset: () => { done = true; },
    };
    stream.router = router;
    stream.downstream = downstream;
    stream.decodeHeaders(true);
    if (!done) throw new Error('the stream did not complete (the plugin stopped it?)');
    stream.complete();
  };
  const cpuUs = (): number => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < req.count; i++) one();
    const t = process.cpuUsage(t0);
    return (t.user + t.system) / req.count;
  };
  try {
    cpuUs(); // warm-up: tier-up of the guest's hot functions and of the host's
    calls.clear();
    const cpuUsPerStream = cpuUs();
    const callsPerStream = req.countCalls ? Object.fromEntries([...calls].map(([fn, n]) => [fn, n / req.count])) : undefined;
    return { cpuUsPerStream, guestMemoryBytes: plugin?.vm.memory.size ?? 0, ...(callsPerStream ? { callsPerStream } : {}) };
  } finally {
    plugin?.close();
  }
}

if (require.main === module) {
  const req = JSON.parse(process.argv[2] ?? '') as ChainProbeRequest;
  probeChain(req).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
