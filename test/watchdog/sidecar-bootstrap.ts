import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, type FilterSpec, type TempDir } from '../http/helpers';

type Json = Record<string, unknown>;

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  /** One URL per listener, in the order given. */
  readonly urls: readonly string[];
  readonly admin: string;
}

/**
 * A real Sidecar from one Envoy bootstrap with one listener per entry of `listeners` (each its own wasm
 * filters, all routed to `backend` at `upstreamPort`) and an admin on port 0.
 */
export async function startListeners(tmp: TempDir, upstreamPort: number, listeners: ReadonlyArray<readonly FilterSpec[]>): Promise<RunningSidecar> {
  const docs = listeners.map((filters) => bootstrapJson({ filters, clusters: [{ name: 'backend', port: upstreamPort }] }));
  const doc = docs[0]!;
  const all = docs.map((d, i) => {
    const listener = ((d['static_resources'] as Json)['listeners'] as Json[])[0]!;
    return { ...listener, name: `listener-${i}` };
  });
  (doc['static_resources'] as Json)['listeners'] = all;
  doc['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, doc);
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000 });
  const admin = sidecar.admin;
  if (!admin) throw new Error('the bootstrap has an admin, the sidecar none');
  const { port } = await admin.start();
  return { sidecar, urls: sidecar.listeners.map((l) => `http://127.0.0.1:${l.port}`), admin: `http://127.0.0.1:${port}` };
}
