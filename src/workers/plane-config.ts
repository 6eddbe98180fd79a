import type { Logger } from '../common/logger';
import { staticSecrets, type SidecarConfig } from '../http/listener-config';
import { defaultModuleCache, type CompiledPlugin, type ModuleCache, type SharedModule } from '../wasm/module-cache';
import { encodeNode } from '../xds/protos';
import type { DataPlaneConfig } from './data-plane';
import { assertPlainData } from './plain-data';
import { parseWasmServices } from './wasm-services';

/**
 * The main thread's side of a DataPlane's configuration: everything read, parsed and encoded once here (YAML,
 * the Envoy protos, PGV validation, the node message), so that a worker starts from plain data.
 */

/**
 * The DataPlaneConfig of `config`. With `forWorkers`, also checks that it crosses into a worker intact (a
 * WorkerError naming the field otherwise: a parsed config that grew a class instance fails here, at start).
 */
export function dataPlaneConfig(config: SidecarConfig, forWorkers = false): DataPlaneConfig {
  const { node } = config.bootstrap;
  const message = encodeNode(node.message);
  const plane: DataPlaneConfig = {
    staticClusters: config.bootstrap.staticClusters,
    listeners: config.listeners,
    node: { id: node.id, cluster: node.cluster, metadata: node.metadata, ...(message ? { message } : {}) },
    secrets: staticSecrets(config.bootstrap),
    wasmServices: parseWasmServices(config.bootstrap.wasmServices).filter((s) => !s.singleton).map((s) => s.plugin),
  };
  if (forWorkers) assertPlainData(plane, 'workerData.plane');
  return plane;
}

/**
 * Compiles (here, once) the local code of every Wasm filter and service a worker loads, for the workers to adopt
 * instead of reading and compiling it again (a worker restarted later runs the same code, whatever the file
 * holds by then). Code that does not compile is left out: each worker then fails to load it and
 * reports the error as a worker that compiled it itself would. Remote code is fetched (and compiled) per worker.
 */
export async function compileForWorkers(plane: DataPlaneConfig, logger: Logger, cache: ModuleCache = defaultModuleCache): Promise<SharedModule[]> {
  const filters = [...plane.listeners.flatMap((l) => l.wasmFilters), ...plane.wasmServices];
  const shared = new Map<string, { compiled: CompiledPlugin; files: Set<string> }>();
  for (const f of filters) {
    if (f.code.kind === 'remote') continue;
    try {
      const compiled = await (f.code.kind === 'file' ? cache.compileFile(f.code.filename) : cache.compile(f.code.bytes));
      const entry = shared.get(compiled.sha256) ?? { compiled, files: new Set<string>() };
      if (f.code.kind === 'file') entry.files.add(f.code.filename);
      shared.set(compiled.sha256, entry);
    } catch (err) {
      logger.debug({ filter: f.path, err: (err as Error).message }, 'plugin code not compiled for the workers; each worker reports it');
    }
  }
  return [...shared.values()].map((e) => cache.shareable(e.compiled, [...e.files]));
}
