import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from './yaml';
import { ConfigError } from '../common/errors';
import type { QuickPlugin } from './quick-bootstrap';

/**
 * Higress (`extensions.higress.io/v1alpha1`) and Istio (`extensions.istio.io/v1alpha1`) `WasmPlugin` resources,
 * turned into the filters a control plane would send: Higress's controller (convertIstioWasmPlugin) folds
 * `defaultConfig` and `matchRules` into one configuration with `_rules_` (`ingress` -> `_match_route_`, `domain` ->
 * `_match_domain_`, `service` -> `_match_service_`); Istio orders plugins by phase (AUTHN, AUTHZ, STATS, then
 * UNSPECIFIED_PHASE just before the router) and, within a phase, by descending priority. Fields that cannot be
 * honoured here are refused with their path.
 */

export const HIGRESS_API = 'extensions.higress.io/v1alpha1';
export const ISTIO_API = 'extensions.istio.io/v1alpha1';

const PHASE_ORDER = ['AUTHN', 'AUTHZ', 'STATS', 'UNSPECIFIED_PHASE'] as const;
type Phase = (typeof PHASE_ORDER)[number];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

/** Spec fields each API defines (the union of what this reader honours and what it refuses by name). */
const COMMON_FIELDS = ['selector', 'targetRef', 'targetRefs', 'url', 'sha256', 'imagePullPolicy', 'imagePullSecret', 'verificationKey', 'pluginName', 'pluginConfig', 'phase', 'priority', 'failStrategy', 'vmConfig', 'match', 'type'];
const HIGRESS_FIELDS = [...COMMON_FIELDS, 'defaultConfig', 'defaultConfigDisable', 'matchRules'];
const MATCH_RULE_FIELDS = ['ingress', 'domain', 'service', 'config', 'configDisable'];

export interface WasmPluginOptions {
  /** This workload's labels (`--labels`), matched against `spec.selector.matchLabels`. */
  readonly labels?: Readonly<Record<string, string>>;
  /** For `vmConfig.env[].valueFrom: HOST`. */
  readonly hostEnv?: Readonly<Record<string, string | undefined>>;
}

interface Ordered {
  readonly plugin: QuickPlugin;
  readonly phase: number;
  readonly priority: number;
  readonly key: string;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function boolValue(v: Json | undefined, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  // BoolValue wrappers may arrive as {value: true} from tools that emit the proto form.
  if (isObject(v) && typeof v['value'] === 'boolean') return v['value'];
  throw new ConfigError('must be a boolean', path);
}

function stringList(v: Json | undefined, path: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new ConfigError('must be a list of strings', path);
  return v as string[];
}

function resolveUrl(url: string, baseDir: string, path: string): string {
  if (url.startsWith('file://')) {
    try {
      return fileURLToPath(url);
    } catch (err) {
      throw new ConfigError(`not a usable file:// URL: ${(err as Error).message}`, path, { cause: err });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new ConfigError(`fetching plugin code from '${url.split('://')[0]}://' is not supported; download the .wasm and use a file:// URL or a path`, path);
  }
  return isAbsolute(url) ? url : resolve(baseDir, url);
}

/** Higress controller's conversion: defaultConfig (unless disabled) plus `_rules_`; undefined = not installed. */
function higressConfiguration(spec: JsonObject, path: string): JsonObject | undefined {
  if (spec['pluginConfig'] !== undefined) return spec['pluginConfig'] as JsonObject;
  const defaultDisabled = boolValue(spec['defaultConfigDisable'], `${path}.defaultConfigDisable`);
  const base: JsonObject = defaultDisabled ? {} : { ...((spec['defaultConfig'] as JsonObject | undefined) ?? {}) };
  const rules = spec['matchRules'];
  const ruleValues: JsonObject[] = [];
  if (rules !== undefined && rules !== null) {
    if (!Array.isArray(rules)) throw new ConfigError('must be a list', `${path}.matchRules`);
    rules.forEach((rule, i) => {
      const rpath = `${path}.matchRules[${i}]`;
      if (!isObject(rule)) throw new ConfigError('must be an object', rpath);
      for (const k of Object.keys(rule)) if (!MATCH_RULE_FIELDS.includes(k)) throw new ConfigError(`unknown field '${k}'`, `${rpath}.${k}`);
      if (boolValue(rule['configDisable'], `${rpath}.configDisable`)) return;
      const config = rule['config'] ?? {};
      if (!isObject(config)) throw new ConfigError('must be an object', `${rpath}.config`);
      const out: JsonObject = { ...config };
      const route = stringList(rule['ingress'], `${rpath}.ingress`);
      const service = stringList(rule['service'], `${rpath}.service`);
      const domain = stringList(rule['domain'], `${rpath}.domain`);
      if (route.length > 0) out['_match_route_'] = route;
      if (service.length > 0) out['_match_service_'] = service;
      if (domain.length > 0) out['_match_domain_'] = domain;
      if (route.length + service.length + domain.length === 0) throw new ConfigError('invalid match rule has no match condition (ingress, domain or service)', rpath);
      ruleValues.push(out);
    });
  }
  if (ruleValues.length > 0) base['_rules_'] = ruleValues;
  else if (defaultDisabled) return undefined;
  return base;
}

function environment(spec: JsonObject, path: string, hostEnv: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const vm = spec['vmConfig'];
  if (vm === undefined || vm === null) return {};
  if (!isObject(vm)) throw new ConfigError('must be an object', `${path}.vmConfig`);
  for (const k of Object.keys(vm)) if (k !== 'env') throw new ConfigError(`unknown field '${k}'`, `${path}.vmConfig.${k}`);
  const env: Record<string, string> = {};
  const list = vm['env'] ?? [];
  if (!Array.isArray(list)) throw new ConfigError('must be a list', `${path}.vmConfig.env`);
  list.forEach((e, i) => {
    const epath = `${path}.vmConfig.env[${i}]`;
    if (!isObject(e) || typeof e['name'] !== 'string' || e['name'] === '') throw new ConfigError('needs a name', epath);
    const from = e['valueFrom'] ?? 'INLINE';
    if (from === 'INLINE') env[e['name']] = typeof e['value'] === 'string' ? e['value'] : '';
    else if (from === 'HOST') env[e['name']] = hostEnv[e['name']] ?? '';
    else throw new ConfigError(`unknown valueFrom '${String(from)}' (INLINE or HOST)`, `${epath}.valueFrom`);
  });
  return env;
}

function selectorMatches(spec: JsonObject, path: string, labels: Readonly<Record<string, string>> | undefined): boolean {
  const selector = spec['selector'];
  if (selector === undefined || selector === null) return true;
  const match = isObject(selector) ? selector['matchLabels'] : undefined;
  if (!isObject(selector) || Object.keys(selector).some((k) => k !== 'matchLabels') || !isObject(match)) {
    throw new ConfigError('only matchLabels is supported', `${path}.selector`);
  }
  if (!labels) throw new ConfigError('selects workloads by label: pass this sidecar\'s labels with --labels k=v,... or remove the selector', `${path}.selector`);
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

function onePlugin(doc: JsonObject, where: string, baseDir: string, options: WasmPluginOptions): Ordered | undefined {
  const api = doc['apiVersion'];
  const isHigress = api === HIGRESS_API;
  if (!isHigress && api !== ISTIO_API) throw new ConfigError(`apiVersion must be ${HIGRESS_API} or ${ISTIO_API}, got '${String(api)}'`, `${where}: apiVersion`);
  const meta = isObject(doc['metadata']) ? doc['metadata'] : {};
  const name = typeof meta['name'] === 'string' ? meta['name'] : '';
  if (!name) throw new ConfigError('is required', `${where}: metadata.name`);
  const namespace = typeof meta['namespace'] === 'string' && meta['namespace'] ? meta['namespace'] : 'default';
  const spec = doc['spec'];
  const path = `${where}: spec`;
  if (!isObject(spec)) throw new ConfigError('is required', path);
  const known = isHigress ? HIGRESS_FIELDS : COMMON_FIELDS;
  for (const k of Object.keys(spec)) if (!known.includes(k)) throw new ConfigError(`unknown field '${k}' for ${String(api)}`, `${path}.${k}`);
  for (const k of ['targetRef', 'targetRefs', 'match']) {
    if (spec[k] !== undefined) throw new ConfigError('traffic selection by gateway/service/port is not supported by this sidecar (every request passes its one listener); remove it', `${path}.${k}`);
  }
  if (spec['verificationKey'] !== undefined) throw new ConfigError('image signature verification is not supported; remove it only if you trust the file', `${path}.verificationKey`);
  if (spec['type'] !== undefined && spec['type'] !== 'HTTP' && spec['type'] !== 'UNSPECIFIED_PLUGIN_TYPE') {
    throw new ConfigError(`plugin type '${String(spec['type'])}' is not supported (HTTP filters only)`, `${path}.type`);
  }
  if (!selectorMatches(spec, path, options.labels)) return undefined;

  if (typeof spec['url'] !== 'string' || spec['url'] === '') throw new ConfigError('is required', `${path}.url`);
  const file = resolveUrl(spec['url'], baseDir, `${path}.url`);
  // Image pulling only concerns oci:// code (refused above): with a local file these fields would change nothing.
  for (const k of ['imagePullPolicy', 'imagePullSecret']) {
    if (spec[k] !== undefined) throw new ConfigError('applies to oci:// images only, and this plugin\'s code is a local file: remove it', `${path}.${k}`);
  }
  if (spec['sha256'] !== undefined) {
    // YAML reads an unquoted all-digit digest as a number: refuse rather than compare against its decimal form.
    if (typeof spec['sha256'] !== 'string' || !/^[0-9a-fA-F]{64}$/.test(spec['sha256'])) throw new ConfigError('must be 64 hex digits, as a (quoted) string', `${path}.sha256`);
    let digest: string;
    try {
      digest = createHash('sha256').update(readFileSync(file)).digest('hex');
    } catch (err) {
      throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, `${path}.url`, { cause: err });
    }
    if (digest !== String(spec['sha256']).toLowerCase()) throw new ConfigError(`${file} has sha256 ${digest}, not ${String(spec['sha256'])}`, `${path}.sha256`);
  }

  const phaseName = (spec['phase'] ?? 'UNSPECIFIED_PHASE') as Phase;
  const phase = PHASE_ORDER.indexOf(phaseName);
  if (phase < 0) throw new ConfigError(`unknown phase '${String(phaseName)}' (${PHASE_ORDER.join(', ')})`, `${path}.phase`);
  const rawPriority = isObject(spec['priority']) ? spec['priority']['value'] : spec['priority'];
  const priority = rawPriority === undefined || rawPriority === null ? 0 : Number(rawPriority);
  if (!Number.isInteger(priority)) throw new ConfigError('must be an integer', `${path}.priority`);
  const failStrategy = spec['failStrategy'] ?? 'FAIL_CLOSE';
  if (failStrategy !== 'FAIL_CLOSE' && failStrategy !== 'FAIL_OPEN') throw new ConfigError(`unknown failStrategy '${String(failStrategy)}' (FAIL_CLOSE or FAIL_OPEN)`, `${path}.failStrategy`);

  let configuration: JsonObject | undefined;
  if (isHigress) {
    configuration = higressConfiguration(spec, path);
    if (configuration === undefined) return undefined; // defaultConfigDisable and no rule: Higress installs nothing
  } else if (spec['pluginConfig'] !== undefined) {
    if (!isObject(spec['pluginConfig'])) throw new ConfigError('must be an object', `${path}.pluginConfig`);
    configuration = spec['pluginConfig'];
  }
  const filterName = `${namespace}.${name}`;
  return {
    phase,
    priority,
    key: filterName,
    plugin: {
      name: filterName,
      file,
      configuration: configuration === undefined ? '' : JSON.stringify(configuration),
      rootId: typeof spec['pluginName'] === 'string' ? spec['pluginName'] : '',
      vmId: '',
      failOpen: failStrategy === 'FAIL_OPEN',
      environment: environment(spec, path, options.hostEnv ?? process.env),
      origin: where,
    },
  };
}

/** Every WasmPlugin in the given YAML files (multi-document, or `kind: List`), in filter-chain order. */
export function readWasmPlugins(files: readonly string[], options: WasmPluginOptions = {}): QuickPlugin[] {
  const ordered: Ordered[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, '--wasm-plugin', { cause: err });
    }
    let documents: ReturnType<typeof parseAllDocuments>;
    try {
      documents = parseAllDocuments(text);
    } catch (err) {
      throw new ConfigError(`not YAML: ${(err as Error).message}`, file, { cause: err });
    }
    const list = Array.isArray(documents) ? documents : [];
    list.forEach((d, di) => {
      if (d.errors.length > 0) throw new ConfigError(`not YAML: ${d.errors[0]!.message}`, `${file} (document ${di + 1})`);
      let doc: Json;
      try {
        doc = d.toJS() as Json;
      } catch (err) {
        throw new ConfigError(`not YAML: ${(err as Error).message}`, `${file} (document ${di + 1})`, { cause: err });
      }
      if (doc === null || doc === undefined) return;
      const docs = isObject(doc) && doc['kind'] === 'List' && Array.isArray(doc['items']) ? doc['items'] : [doc];
      docs.forEach((item, ii) => {
        const where = `${file} (document ${di + 1}${docs.length > 1 ? `, item ${ii}` : ''})`;
        if (!isObject(item) || item['kind'] !== 'WasmPlugin') throw new ConfigError(`kind must be WasmPlugin, got '${isObject(item) ? String(item['kind']) : typeof item}'`, `${where}: kind`);
        const p = onePlugin(item, where, dirname(resolve(file)), options);
        if (p) ordered.push(p);
      });
    });
  }
  ordered.sort((a, b) => a.phase - b.phase || b.priority - a.priority || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return ordered.map((o) => o.plugin);
}
