import { createHash } from 'node:crypto';
import { PluginLoadError } from '../common/errors';
import { detectAbiVersion, type AbiVersion } from './abi-version';
import { noteModuleDigest } from '../abi/host-call-recorder';

export interface CompiledPlugin {
  readonly module: WebAssembly.Module;
  readonly abi: AbiVersion;
  readonly sha256: string;
}

/**
 * Compiles each distinct module once (keyed by sha256) and hands the same WebAssembly.Module to every VM,
 * as Envoy shares compiled code across VMs and workers. A malformed module is a PluginLoadError.
 */
export class ModuleCache {
  private readonly modules = new Map<string, Promise<CompiledPlugin>>();

  compile(bytes: Uint8Array): Promise<CompiledPlugin> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    let entry = this.modules.get(sha256);
    if (!entry) {
      entry = compileModule(bytes, sha256);
      this.modules.set(sha256, entry);
      entry.catch(() => this.modules.delete(sha256));
    }
    return entry;
  }

  get size(): number {
    return this.modules.size;
  }
}

async function compileModule(bytes: Uint8Array, sha256: string): Promise<CompiledPlugin> {
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(bytes);
  } catch (err) {
    throw new PluginLoadError(`not a valid WebAssembly module: ${(err as Error).message}`, { cause: err });
  }
  noteModuleDigest(module, sha256);
  return { module, abi: detectAbiVersion(module), sha256 };
}

/** The process-wide cache used when callers don't bring their own. */
export const defaultModuleCache = new ModuleCache();
