/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and attributes self time: by where the code lives (guest Wasm, the
 * host functions, the stream plumbing, the attributes, node's own HTTP/net code, GC, ...) and by function.
 * Used by profile.ts; runnable alone: `node dist/bench/profile/cpu-profile.js <file.cpuprofile> [requests]`.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives, most specific first. */
const CATEGORIES: ReadonlyArray<readonly [string, (f: CallFrame) => boolean]> = [
  ['(garbage collector)', (f) => f.functionName === '(garbage collector)'],
  ['(idle)', (f) => f.functionName === '(idle)' || f.functionName === '(program)'],
  ['guest wasm', (f) => f.url.startsWith('wasm://')],
  ['host functions (src/abi, src/wasm)', (f) => /\/src\/(abi|wasm)\//.test(f.url)],
  ['stream plumbing (http-stream, active-stream)', (f) => /\/src\/(runtime\/http-stream|http\/active-stream)/.test(f.url)],
  ['attributes (stream-attributes, properties)', (f) => /\/src\/runtime\/stream-attributes/.test(f.url)],
  ['runtime/plugin', (f) => /\/src\/runtime\//.test(f.url)],
  ['listener, router, headers (src/http)', (f) => /\/src\/http\//.test(f.url)],
  ['other src/', (f) => /\/dist\/src\//.test(f.url)],
  ['undici', (f) => f.url.includes('node_modules/undici')],
  ['other node_modules', (f) => f.url.includes('node_modules/')],
  ['node:http (internal)', (f) => /node:_http|node:internal\/http|node:http/.test(f.url)],
  ['node:net/streams (internal)', (f) => /node:net|node:internal\/(streams|stream_base|net)|node:stream/.test(f.url)],
  ['node internal (other)', (f) => f.url.startsWith('node:')],
  ['native / builtins', () => true],
];

export interface ProfileSummary {
  readonly totalMs: number;
  readonly categories: ReadonlyArray<{ name: string; ms: number }>;
  readonly functions: ReadonlyArray<{ name: string; category: string; ms: number }>;
}

/** `window`: only samples from `fromMs` to `toMs` after the profile started (the measured phase of a run). */
export function summarizeProfile(file: string, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  const from = window ? p.startTime + window.fromMs * 1000 : -Infinity;
  const to = window ? p.startTime + window.toMs * 1000 : Infinity;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const cats = new Map<string, number>();
  const fns = new Map<string, { category: string; us: number }>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const category = CATEGORIES.find(([, test]) => test(f))![0];
    if (category === '(idle)') continue;
    total += us;
    cats.set(category, (cats.get(category) ?? 0) + us);
    const where = f.url ? `${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const name = `${f.functionName || '(anonymous)'} ${where}`.trim();
    const e = fns.get(name) ?? { category, us: 0 };
    e.us += us;
    fns.set(name, e);
  }
  return {
    totalMs: total / 1000,
    categories: [...cats].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
    functions: [...fns].map(([name, e]) => ({ name, category: e.category, ms: e.us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
}

/** Prints the summary; with `requests`, each figure also as µs per request. */
export function printProfile(s: ProfileSummary, requests: number | undefined, top = 40): void {
  const per = (ms: number): string => (requests ? `${((ms * 1000) / requests).toFixed(2).padStart(8)} µs/req` : '');
  const pct = (ms: number): string => `${((ms / s.totalMs) * 100).toFixed(1).padStart(5)}%`;
  console.log(`busy (non-idle) samples: ${s.totalMs.toFixed(0)} ms${requests ? ` over ${requests} requests = ${((s.totalMs * 1000) / requests).toFixed(1)} µs/req` : ''}`);
  for (const c of s.categories) console.log(`  ${pct(c.ms)} ${per(c.ms)}  ${c.name}`);
  console.log(`top ${top} functions by self time:`);
  for (const f of s.functions.slice(0, top)) console.log(`  ${pct(f.ms)} ${per(f.ms)}  ${f.name}  [${f.category}]`);
}

if (require.main === module) {
  const [file, requests] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpu-profile.js <file.cpuprofile> [requests]');
  printProfile(summarizeProfile(file), requests ? Number(requests) : undefined);
}
