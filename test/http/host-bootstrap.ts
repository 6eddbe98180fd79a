import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, type BootstrapSpec, type TempDir } from './helpers';

type Json = Record<string, unknown>;

/** The listener and its HttpConnectionManager of a bootstrapJson() document, for a test to reshape. */
export interface ListenerParts {
  /** The whole bootstrap document. */
  readonly doc: Json;
  readonly listener: Json;
  readonly hcm: Json;
  readonly routeConfig: Json;
}

/** startSidecar with a bootstrap the test adjusts first (route table, metadata, buffer limits). */
export async function startShaped(tmp: TempDir, spec: BootstrapSpec, shape: (parts: ListenerParts) => void): Promise<{ sidecar: Sidecar; url: string }> {
  const doc = bootstrapJson(spec);
  const listener = ((doc['static_resources'] as Json)['listeners'] as Json[])[0]!;
  const chain = (listener['filter_chains'] as Json[])[0]!;
  const hcm = ((chain['filters'] as Json[])[0]!['typed_config']) as Json;
  shape({ doc, listener, hcm, routeConfig: hcm['route_config'] as Json });
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, doc);
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000 });
  return { sidecar, url: `http://127.0.0.1:${sidecar.listeners[0]!.port}` };
}

export function hex(s: string | Buffer): string {
  return Buffer.from(s).toString('hex');
}

/** An 8-byte little-endian integer as Envoy serializes it, in hex. */
export function int64Hex(n: number | bigint): string {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return b.toString('hex');
}
