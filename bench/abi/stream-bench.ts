import { performance } from 'node:perf_hooks';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../../test/support/plugins';
import type { HeaderPairs } from '../../src/abi/pairs';

/**
 * Per-stream cost of the Wasm host (issue 2): context create, request headers (10 headers), response headers,
 * then log/done/delete, for an AssemblyScript no-op plugin and the header-adding plugin, beside a JS-only loop
 * doing the same header work (copy 10 headers, add one each way), all measured in this run.
 */

const REQUEST: HeaderPairs = [
  [':method', 'GET'], [':path', '/api/v1/items?page=2'], [':authority', 'example.com'], [':scheme', 'http'],
  ['user-agent', 'bench/1.0'], ['accept', 'application/json'], ['accept-encoding', 'gzip'],
  ['x-request-id', '2f1e8c1e-0c1b-4c55-9d39-8d2b6e8f0a11'], ['cookie', 'session=abc123'], ['x-forwarded-for', '10.0.0.1'],
];
const RESPONSE: HeaderPairs = [[':status', '200'], ['content-type', 'application/json'], ['content-length', '42']];

function timeLoop(iterations: number, body: () => void): number {
  for (let i = 0; i < Math.min(2000, iterations); i++) body(); // warm-up
  const start = performance.now();
  for (let i = 0; i < iterations; i++) body();
  return ((performance.now() - start) * 1000) / iterations; // µs per stream
}

async function pluginLoop(name: string, rootId: string, iterations: number): Promise<number> {
  const host = await HostEmulator.load(pluginPath(name), { rootId, name });
  const us = timeLoop(iterations, () => {
    const s = host.stream();
    s.sendRequestHeaders(REQUEST, true);
    s.sendResponseHeaders(RESPONSE, true);
    s.complete();
  });
  host.close();
  return us;
}

function jsLoop(iterations: number): number {
  return timeLoop(iterations, () => {
    const req: HeaderPairs = REQUEST.map(([k, v]): [string, string] => [k.toLowerCase(), v]);
    req.push(['x-added-by', 'proxy-wasm-sidecar']);
    const res: HeaderPairs = RESPONSE.map(([k, v]): [string, string] => [k.toLowerCase(), v]);
    res.push(['x-added-by', 'proxy-wasm-sidecar']);
    if (req.length + res.length === 0) throw new Error('unreachable');
  });
}

export async function runStreamBench(iterations = 20_000): Promise<void> {
  const js = jsLoop(iterations);
  const noop = await pluginLoop('noop', 'noop', iterations);
  const add = await pluginLoop('add-header', 'add_header', iterations);
  console.log('\n== Wasm host: per-stream cost (create, 10 request headers, response headers, log/done/delete) ==');
  console.log(`iterations per case: ${iterations}`);
  const rows: Array<[string, number]> = [['JS-only header loop (baseline)', js], ['no-op plugin (AssemblyScript)', noop], ['add-header plugin (AssemblyScript)', add]];
  for (const [name, us] of rows) {
    console.log(`${name.padEnd(40)} ${us.toFixed(2).padStart(8)} µs/stream  ${(us / js).toFixed(1).padStart(6)}x baseline  ${Math.round(1e6 / us).toString().padStart(8)} streams/s`);
  }
}

if (require.main === module) {
  runStreamBench().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
