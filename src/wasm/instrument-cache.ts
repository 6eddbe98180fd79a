import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTRUMENTATION_VERSION, type InstrumentedModule, type MemoryImport } from './instrument';

const MAGIC = 'PWSI';

function binaryenVersion(): string {
  const pkg = JSON.parse(readFileSync(require.resolve('binaryen/package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** Where instrumented modules are kept between runs unless a ModuleCache is given another directory. */
export function defaultInstrumentCacheDir(): string {
  return join(tmpdir(), 'proxy-wasm-sidecar', 'instrumented');
}

/**
 * Instrumented modules on disk, by the sha256 of the original code, the rewrite's version, binaryen's version
 * and the check budget, so a restart (or each worker thread) does not rewrite a 6 MB Go module again. A file
 * is `PWSI`, the u32 LE length of a JSON header (the memory import), the header, then the module; it is
 * written to a temporary name and renamed, so a reader never sees half a file. A file that does not parse is
 * treated as absent (and rewritten).
 */
export class InstrumentCache {
  private readonly tag: string;

  constructor(private readonly dir: string, budget: number) {
    this.tag = `i${INSTRUMENTATION_VERSION}-b${binaryenVersion()}-n${budget}`;
  }

  private file(sha256: string): string {
    return join(this.dir, `${sha256}-${this.tag}.wasm`);
  }

  async get(sha256: string): Promise<InstrumentedModule | undefined> {
    let data: Buffer;
    try {
      data = await readFile(this.file(sha256));
    } catch {
      return undefined;
    }
    if (data.length < 8 || data.toString('latin1', 0, 4) !== MAGIC) return undefined;
    const headerLength = data.readUInt32LE(4);
    if (8 + headerLength > data.length) return undefined;
    let header: { memory?: MemoryImport };
    try {
      header = JSON.parse(data.toString('utf8', 8, 8 + headerLength)) as { memory?: MemoryImport };
    } catch {
      return undefined;
    }
    const bytes = data.subarray(8 + headerLength);
    return header.memory ? { bytes, memory: header.memory } : { bytes };
  }

  /** Best effort: a directory that cannot be written only costs the next start another rewrite. */
  async put(sha256: string, value: InstrumentedModule): Promise<boolean> {
    const header = Buffer.from(JSON.stringify(value.memory ? { memory: value.memory } : {}), 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.write(MAGIC, 0, 'latin1');
    prefix.writeUInt32LE(header.length, 4);
    const target = this.file(sha256);
    const temp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      // writev, not a concatenated copy: a Go module is 7 MB, and every transient copy is RSS the allocator keeps.
      const file = await open(temp, 'w');
      try {
        await file.writev([prefix, header, value.bytes]);
      } finally {
        await file.close();
      }
      await rename(temp, target);
      return true;
    } catch {
      await unlink(temp).catch(() => undefined);
      return false;
    }
  }

  async delete(sha256: string): Promise<void> {
    await unlink(this.file(sha256)).catch(() => undefined);
  }
}
