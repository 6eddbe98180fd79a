import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

/**
 * Records which host functions each plugin module called, and with which statuses, when
 * PWS_HOST_CALL_RECORD names a directory (`make conformance` sets it while the tests run). Modules are keyed
 * by the sha256 of their bytes, so docs/conformance.md can map them back to the plugin sources and their SDK.
 * Off (the default) it costs one property read per VM, nothing per call.
 */
const RECORD_DIR = process.env['PWS_HOST_CALL_RECORD'];

type Counts = Map<string, Map<number | 'void', number>>;
const byModule = new Map<string, Counts>();
const shaOf = new WeakMap<WebAssembly.Module, string>();

export function noteModuleDigest(module: WebAssembly.Module, sha256: string): void {
  if (RECORD_DIR) shaOf.set(module, sha256);
}

/** A per-call observer for one VM's module, or undefined when recording is off. */
export function hostCallRecorder(module: WebAssembly.Module): ((fn: string, status: number | undefined) => void) | undefined {
  if (!RECORD_DIR) return undefined;
  const sha = shaOf.get(module);
  if (!sha) return undefined;
  let counts = byModule.get(sha);
  if (!counts) byModule.set(sha, (counts = new Map()));
  const moduleCounts = counts;
  return (fn, status) => {
    let statuses = moduleCounts.get(fn);
    if (!statuses) moduleCounts.set(fn, (statuses = new Map()));
    const key = status ?? 'void';
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  };
}

function flush(): void {
  if (!RECORD_DIR || byModule.size === 0) return;
  const modules: Record<string, Record<string, Record<string, number>>> = {};
  for (const [sha, counts] of byModule) {
    modules[sha] = Object.fromEntries([...counts].map(([fn, st]) => [fn, Object.fromEntries([...st].map(([k, n]) => [String(k), n]))]));
  }
  mkdirSync(RECORD_DIR, { recursive: true });
  const file = join(RECORD_DIR, `calls-${process.pid}-${threadId}.json`);
  writeFileSync(file, JSON.stringify({ script: process.argv[1] ?? '', modules }));
}

if (RECORD_DIR) process.on('exit', flush);
