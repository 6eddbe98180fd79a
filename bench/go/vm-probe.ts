/**
 * VM start time and memory per VM, in a process of its own (bench/go/go-bench.ts forks it with --expose-gc) so
 * that nothing else in the process moves RSS: compiles one module, starts a first VM, then `count` further VMs of
 * the same compiled module (Plugin.load with the CompiledPlugin: instantiate, _initialize, root context,
 * proxy_on_vm_start, proxy_on_configure, as Envoy does for each further worker VM), keeping all of them alive,
 * and reports the timings and the memory growth as one JSON line on stdout.
 */
import { readFileSync } from 'node:fs';
import { Plugin } from '../../src/runtime/plugin';
import { ModuleCache } from '../../src/wasm/module-cache';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { MetricsRegistry } from '../../src/services/metrics';
import type { HostServices } from '../../src/abi/host-services';

/** Host services for a plugin outside the sidecar: everything but Redis and callouts, log level info. */
export function probeServices(): HostServices {
  return { sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(), metrics: new MetricsRegistry(), logLevel: () => 2 };
}

export interface VmProbeRequest {
  readonly file: string;
  readonly rootId: string;
  readonly configuration: string;
  readonly count: number;
}

export interface MemorySample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

export interface VmProbeResult {
  readonly compileMs: number;
  readonly firstVmMs: number;
  /** One per further VM, in creation order: wall time, and the process's CPU time (all threads) meanwhile. */
  readonly furtherVmMs: readonly number[];
  readonly furtherVmCpuMs: readonly number[];
  /** Linear memory of one VM after start, in bytes. */
  readonly linearMemoryBytes: number;
  /** After the first VM (gc'd), and after all further VMs (gc'd). */
  readonly before: MemorySample;
  readonly after: MemorySample;
}

function sample(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('vm-probe needs node --expose-gc');
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

export async function probe(req: VmProbeRequest): Promise<VmProbeResult> {
  const services = probeServices();
  const bytes = readFileSync(req.file);
  let t0 = process.hrtime.bigint();
  const compiled = await new ModuleCache().compile(bytes);
  const compileMs = ms(t0);
  const config = (i: number) => ({ name: `vm-${i}`, rootId: req.rootId, vmId: `vm-${i}`, configuration: req.configuration });
  const plugins: Plugin[] = [];
  try {
    t0 = process.hrtime.bigint();
    plugins.push(await Plugin.load(compiled, config(0), { services }));
    const firstVmMs = ms(t0);
    const linearMemoryBytes = plugins[0]!.vm.memory.size;
    const before = sample();
    const furtherVmMs: number[] = [];
    const furtherVmCpuMs: number[] = [];
    for (let i = 1; i <= req.count; i++) {
      const cpu0 = process.cpuUsage();
      t0 = process.hrtime.bigint();
      plugins.push(await Plugin.load(compiled, config(i), { services }));
      furtherVmMs.push(ms(t0));
      const cpu = process.cpuUsage(cpu0);
      furtherVmCpuMs.push((cpu.user + cpu.system) / 1000);
    }
    const after = sample();
    return { compileMs, firstVmMs, furtherVmMs, furtherVmCpuMs, linearMemoryBytes, before, after };
  } finally {
    for (const p of plugins) p.close();
  }
}

if (require.main === module) {
  const req = JSON.parse(process.argv[2] ?? '') as VmProbeRequest;
  probe(req).then(
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
