import { WasmResult } from '../abi/enums';

interface Entry {
  value: Buffer;
  cas: number;
}

/**
 * What host functions need from shared data. `SharedDataStore` is the in-process store; with `--concurrency N`
 * workers reach the one store in the main thread through a synchronous mailbox (src/workers/mailbox.ts).
 */
export interface SharedDataService {
  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined;
  /** cas 0 writes unconditionally; otherwise it must equal the entry's current cas. */
  set(vmId: string, key: string, value: Buffer, cas: number): WasmResult;
}

/**
 * Proxy-Wasm shared data: key/value with compare-and-swap, scoped by vm_id (Envoy keeps one store per vm_id,
 * shared by every VM and thread of that id). CAS values start at 1 and grow on every write.
 */
export class SharedDataStore implements SharedDataService {
  private readonly scopes = new Map<string, Map<string, Entry>>();
  private nextCas = 1;

  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined {
    const e = this.scopes.get(vmId)?.get(key);
    return e && { value: e.value, cas: e.cas };
  }

  /** cas 0 writes unconditionally; otherwise it must equal the entry's current cas. */
  set(vmId: string, key: string, value: Buffer, cas: number): WasmResult {
    let scope = this.scopes.get(vmId);
    if (!scope) this.scopes.set(vmId, (scope = new Map()));
    const current = scope.get(key);
    if (cas !== 0 && (current === undefined || current.cas !== cas)) return WasmResult.CasMismatch;
    scope.set(key, { value: Buffer.from(value), cas: this.nextCas++ });
    return WasmResult.Ok;
  }

  /** Snapshot for tests and the admin view. */
  entries(vmId: string): Array<[string, Buffer]> {
    return [...(this.scopes.get(vmId)?.entries() ?? [])].map(([k, e]) => [k, e.value]);
  }
}
