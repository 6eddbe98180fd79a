import { readFileSync } from 'node:fs';
import { parseAllDocuments } from './yaml';
import { ConfigError } from '../common/errors';

/**
 * Files people pass to `-c` that are not an Envoy bootstrap but hold one, or describe a plugin: an admin
 * /config_dump, a Kubernetes ConfigMap (Istio's and this project's deploy/ carry the bootstrap as a data key), a
 * WasmPlugin resource. Each is named, with what to pass instead, rather than failing on its first unknown field.
 */
export function refuseNonBootstrap(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return; // the loader reports unreadable files with its own message
  }
  let docs: unknown[];
  try {
    // A JSON file is one document, and JSON.parse reads it without loading yaml's 72 modules into a sidecar
    // that has no other use for them.
    docs = [JSON.parse(text) as unknown];
  } catch {
    try {
      docs = parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
    } catch {
      return;
    }
  }
  const first = docs[0];
  if (typeof first !== 'object' || first === null || Array.isArray(first)) return;
  const doc = first as Record<string, unknown>;
  const kind = typeof doc['kind'] === 'string' ? doc['kind'] : undefined;
  if (kind === 'WasmPlugin') {
    throw new ConfigError(`${file} is a ${String(doc['apiVersion'] ?? '')} WasmPlugin resource, not a bootstrap: run it with \`run --wasm-plugin ${file}\` (add --upstream http://host:port to route somewhere)`, 'kind');
  }
  if (kind === 'ConfigMap') {
    const data = (doc['data'] ?? {}) as Record<string, unknown>;
    const keys = Object.keys(data);
    const likely = keys.find((k) => /\.(ya?ml|json)$/.test(k)) ?? keys[0];
    const name = (doc['metadata'] as Record<string, unknown> | undefined)?.['name'];
    const hint = likely
      ? `extract data["${likely}"], e.g. \`kubectl get configmap ${String(name ?? '<name>')} -o jsonpath='{.data.${likely.replace(/\./g, '\\\\.')}}' > bootstrap.yaml\`, and pass that file`
      : 'it has no data keys';
    throw new ConfigError(`${file} is a Kubernetes ConfigMap, not a bootstrap: ${hint}`, 'kind');
  }
  if (kind !== undefined && typeof doc['apiVersion'] === 'string') {
    throw new ConfigError(`${file} is a Kubernetes ${kind} (${doc['apiVersion']}), not an Envoy bootstrap`, 'kind');
  }
  const configs = doc['configs'];
  if (Array.isArray(configs) && configs.some((c) => typeof c === 'object' && c !== null && String((c as Record<string, unknown>)['@type'] ?? '').includes('ConfigDump'))) {
    throw new ConfigError(`${file} is an admin /config_dump, not a bootstrap: its bootstrap is the BootstrapConfigDump entry, e.g. \`jq '.configs[] | select(."@type" | endswith("BootstrapConfigDump")) | .bootstrap' ${file} > bootstrap.json\` (dynamic resources in the dump come from the control plane and are not part of it)`, 'configs');
  }
}
