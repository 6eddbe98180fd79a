import { readFileSync } from 'node:fs';
import type { RootContext } from '../../src/abi/contexts';
import type { HostServices } from '../../src/abi/host-services';
import { PluginVm, type PluginVmOptions } from '../../src/abi/plugin-vm';
import { silentLogger } from '../../src/common/logger';
import { MetricsRegistry } from '../../src/services/metrics';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { defaultModuleCache, type ModuleCache } from '../../src/wasm/module-cache';
import { pluginPath } from '../support/plugins';

export function services(): HostServices {
  return { sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(), metrics: new MetricsRegistry(), logLevel: () => 0 };
}

export type VmOverrides = Partial<Omit<PluginVmOptions, 'module' | 'abi'>>;

/** A VM of a plugin built by `make plugins`, compiled (and instrumented) through a ModuleCache as the host does. */
export async function createVm(plugin: string, overrides: VmOverrides = {}, cache: ModuleCache = defaultModuleCache): Promise<PluginVm> {
  const compiled = await cache.compile(readFileSync(pluginPath(plugin)));
  return PluginVm.create({
    module: compiled.module,
    abi: compiled.abi,
    vmId: plugin,
    vmConfiguration: Buffer.alloc(0),
    environment: {},
    services: services(),
    logger: silentLogger(),
    label: plugin,
    ...overrides,
  });
}

/** A root context with its plugin configuration, created in the guest (proxy_on_context_create). */
export function rootOf(vm: PluginVm, configuration = ''): RootContext {
  const root = vm.createRootContext({ name: 'test', rootId: '', configuration: Buffer.from(configuration) });
  vm.callGuest(root, 'proxy_on_context_create', root.id, 0);
  return root;
}
