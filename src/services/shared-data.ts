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
  /** cas 0 writes unconditionally, as does any write of a key that does not exist yet; otherwise cas must equal the entry's. */
  set(vmId: string, key: string, value: Buffer, cas: number): WasmResult;
}

/** CAS values are u32 (proxy_get_shared_data writes them as one); 0 means "no CAS" and is never handed out. */
const CAS_LIMIT = 2 ** 32;

/**
 * Proxy-Wasm shared data: key/value with compare-and-swap, scoped by vm_id (Envoy keeps one store per vm_id,
 * shared by every VM and thread of that id). As proxy-wasm-cpp-host's SharedData::set: a write to an existing
 * key with a non-zero cas that is not the entry's current one is CasMismatch; a write to a missing key always
 * succeeds, whatever cas it carries (a plugin that read NOT_FOUND with cas 0 and one that kept an old cas both
 * create it). CAS values start at 1 and grow on every write, wrapping past 2^32 - 1 and skipping 0.
 */
export class SharedDataStore implements SharedDataService {
  private readonly scopes = new Map<string, Map<string, Entry>>();
  private lastCas = 0;

  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined {
    const e = this.scopes.get(vmId)?.get(key);
    return e && { value: e.value, cas: e.cas };
  }

  set(vmId: string, key: string, value: Buffer, cas: number): WasmResult {
    let scope = this.scopes.get(vmId);
    if (!scope) this.scopes.set(vmId, (scope = new Map()));
    const current = scope.get(key);
    if (current !== undefined && cas !== 0 && current.cas !== cas) return WasmResult.CasMismatch;
    scope.set(key, { value: Buffer.from(value), cas: this.nextCas() });
    return WasmResult.Ok;
  }

  private nextCas(): number {
    this.lastCas = (this.lastCas + 1) % CAS_LIMIT || 1;
    return this.lastCas;
  }

  /** Snapshot for tests and the admin view. */
  entries(vmId: string): Array<[string, Buffer]> {
    return [...(this.scopes.get(vmId)?.entries() ?? [])].map(([k, e]) => [k, e.value]);
  }
}
