/**
 * A plugin's own cost per HTTP stream, without HTTP: in a process of its own (forked by go-bench.ts), one VM
 * runs `count` streams back to back, each the callbacks the data plane makes for a GET answered 200 "ok" (context
 * create, request headers, response headers, response body, log, done, delete) with the headers the listener
 * passes and the route properties the Higress SDK reads. Beside the sidecar figures it separates what the guest
 * and the ABI layer cost from what running it inside the data plane adds (cache misses among the HTTP work, the
 * data plane's per-filter bookkeeping). Back to back, the plugin's code and data stay in the CPU caches, which
 * they do not among the HTTP work: this is the floor of the sidecar figure, not an estimate of it.
 */
import type { PropertyValue } from '../../src/abi/properties';
import type { StreamHost } from '../../src/abi/stream-state';
import type { HeaderPairs } from '../../src/abi/pairs';
import { Plugin } from '../../src/runtime/plugin';
import { probeServices } from './vm-probe';

export interface StreamProbeRequest {
  readonly file: string;
  readonly rootId: string;
  readonly configuration: string;
  readonly count: number;
}

export interface StreamProbeResult {
  /** Process CPU (all threads) per stream, µs. */
  readonly cpuUsPerStream: number;
}

const ROUTE: Readonly<Record<string, string>> = { route_name: 'default', cluster_name: 'backend' };

export async function probeStreams(req: StreamProbeRequest): Promise<StreamProbeResult> {
  const plugin = await Plugin.load(req.file, { name: 'probe', rootId: req.rootId, configuration: req.configuration }, { services: probeServices() });
  const host: StreamHost = {
    continueStream: () => {},
    closeStream: () => {},
    sendLocalResponse: () => {},
    property: (path): PropertyValue | undefined => (path.length === 1 ? ROUTE[path[0]!] : undefined),
  };
  const stream = (): void => {
    const s = plugin.createStream(host);
    if (!s) throw new Error('the plugin failed');
    const request: HeaderPairs = [
      [':authority', '127.0.0.1:10000'], [':path', '/bench'], [':method', 'GET'], [':scheme', 'http'],
      ['user-agent', 'wrk'], ['x-request-id', '9b1d6f1e-5d0c-4c5e-9d8e-0f1a2b3c4d5e'], ['x-forwarded-proto', 'http'],
    ];
    const response: HeaderPairs = [[':status', '200'], ['content-type', 'text/plain'], ['content-length', '2']];
    s.requestHeaders(request, true);
    s.responseHeaders(response, false);
    s.responseBody(Buffer.from('ok'), true);
    s.finish({ requestHeaders: request, responseHeaders: response });
  };
  const cpuUs = (): number => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < req.count; i++) stream();
    const t = process.cpuUsage(t0);
    return (t.user + t.system) / req.count;
  };
  try {
    cpuUs(); // warm-up: tier-up of the guest's hot functions and of the host's
    return { cpuUsPerStream: cpuUs() };
  } finally {
    plugin.close();
  }
}

if (require.main === module) {
  const req = JSON.parse(process.argv[2] ?? '') as StreamProbeRequest;
  probeStreams(req).then(
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
