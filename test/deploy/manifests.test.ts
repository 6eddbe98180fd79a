import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import * as ts from 'typescript';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseBootstrap } from '../../src/config/bootstrap';
import { REPO_ROOT } from '../support/plugins';

/**
 * Static checks of deploy/: every Kubernetes manifest against the API schema (the validators kubernetes-models
 * generates from the Kubernetes OpenAPI spec) and against the API's field names (what `kubectl apply
 * --validate=strict` enforces), the wiring between the Deployment, Service and bootstrap ConfigMap, the
 * bootstrap itself (through the sidecar's own loader and, when it exists, `cli.js validate`), and the
 * Dockerfile. No cluster, Docker or network needed.
 */

const K8S_DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const DOCKERFILE = join(REPO_ROOT, 'deploy', 'Dockerfile');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const SIDECAR = 'proxy-wasm-sidecar';
const BOOTSTRAP_PATH = '/etc/proxy-wasm-sidecar/bootstrap.yaml';

type Json = Record<string, unknown>;

interface KubeModel {
  validate(): void;
}

/** apiVersion/kind → the kubernetes-models class that validates it, and its interface for the strict check. */
const MODELS: Readonly<Record<string, { readonly make: (doc: Json) => KubeModel; readonly module: string; readonly iface: string }>> = {
  'apps/v1/Deployment': { make: (d) => new Deployment(d as never), module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  'v1/ConfigMap': { make: (d) => new ConfigMap(d as never), module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1/Service': { make: (d) => new Service(d as never), module: 'kubernetes-models/v1/Service', iface: 'IService' },
  'v1/ServiceAccount': { make: (d) => new ServiceAccount(d as never), module: 'kubernetes-models/v1/ServiceAccount', iface: 'IServiceAccount' },
};

interface Manifest {
  readonly file: string;
  readonly index: number;
  readonly doc: Json;
}

function asObject(v: unknown, what: string): Json {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is not an object`);
  return v as Json;
}

function asArray(v: unknown, what: string): Json[] {
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v as Json[];
}

function kubeKey(doc: Json): string {
  return `${String(doc['apiVersion'])}/${String(doc['kind'])}`;
}

function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort()) {
    parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8')).forEach((d, index) => {
      assert.deepEqual(d.errors.map((e) => e.message), [], `${file} document ${index} is not valid YAML`);
      const doc = d.toJS() as unknown;
      if (doc === null) return; // an empty document (a trailing ---)
      out.push({ file, index, doc: asObject(doc, `${file} document ${index}`) });
    });
  }
  return out;
}

function only(manifests: readonly Manifest[], kind: string): Json {
  const found = manifests.filter((m) => m.doc['kind'] === kind);
  assert.equal(found.length, 1, `expected exactly one ${kind}, found ${found.length}`);
  return found[0]!.doc;
}

function sidecarOf(deployment: Json): { pod: Json; sidecar: Json } {
  const pod = asObject(asObject(asObject(deployment['spec'], 'spec')['template'], 'template')['spec'], 'pod spec');
  const sidecar = asArray(pod['containers'], 'containers').find((c) => c['name'] === SIDECAR);
  assert.ok(sidecar, `no container named ${SIDECAR}`);
  return { pod, sidecar };
}

function containerPort(container: Json, nameOrNumber: unknown): number {
  const ports = asArray(container['ports'], `${String(container['name'])} ports`);
  if (typeof nameOrNumber === 'number') {
    assert.ok(ports.some((p) => p['containerPort'] === nameOrNumber), `${String(container['name'])} does not declare port ${nameOrNumber}`);
    return nameOrNumber;
  }
  const port = ports.find((p) => p['name'] === nameOrNumber);
  assert.ok(port, `${String(container['name'])} has no port named ${String(nameOrNumber)}`);
  return Number(port['containerPort']);
}

function bootstrapText(manifests: readonly Manifest[]): string {
  const cm = only(manifests, 'ConfigMap');
  const text = asObject(cm['data'], 'ConfigMap data')['bootstrap.yaml'];
  assert.equal(typeof text, 'string', 'ConfigMap has no data.bootstrap.yaml');
  return text as string;
}

// -- Strict field names ------------------------------------------------------------------------------------
// The generated schemas allow unknown properties (so does the OpenAPI spec); kubectl rejects them
// (--validate=strict, the default since 1.27). The TypeScript interfaces that ship with kubernetes-models
// list exactly the API's fields, and excess-property checking of an object literal flags every unknown field,
// however deeply nested. So each manifest becomes `const m: IDeployment = <the manifest as a literal>;` in an
// in-memory program, and any diagnostic is a field the API does not have (or a value of the wrong type).

function strictFieldErrors(manifests: readonly Manifest[]): string[] {
  const file = join(REPO_ROOT, '__deploy_manifest_check__.ts');
  const lines: string[] = [];
  const origin: string[] = [];
  manifests.forEach((m, i) => {
    const model = MODELS[kubeKey(m.doc)];
    if (!model) return; // reported by the schema test
    lines.push(`import type { ${model.iface} as T${i} } from '${model.module}';`);
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(m.doc)};`);
    origin[lines.length] = `${m.file}#${m.index}`;
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10, types: [], lib: ['lib.es2022.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((d) => {
    const line = d.start === undefined ? 0 : sf.getLineAndCharacterOfPosition(d.start).line + 1;
    return `${origin[line] ?? `line ${line}`}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// -- Dockerfile ----------------------------------------------------------------------------------------------

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Instructions grouped by stage; comments dropped, `\` continuations joined. */
function dockerStages(text: string): Instruction[][] {
  const logical = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const stages: Instruction[][] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.op === 'FROM') stages.push([]);
    assert.ok(stages.length > 0, `Dockerfile: ${ins.op} before the first FROM`);
    stages[stages.length - 1]!.push(ins);
  }
  return stages;
}

/** The argv of an exec-form (JSON array) ENTRYPOINT/CMD. */
function execForm(ins: Instruction | undefined, what: string): string[] {
  assert.ok(ins, `Dockerfile has no ${what}`);
  let argv: unknown;
  try {
    argv = JSON.parse(ins.args);
  } catch {
    assert.fail(`${what} is not in exec (JSON array) form: ${ins.args}`);
  }
  assert.ok(Array.isArray(argv) && argv.every((a) => typeof a === 'string'), `${what} is not a list of strings`);
  return argv as string[];
}

function last(stage: readonly Instruction[], op: string): Instruction | undefined {
  return [...stage].reverse().find((i) => i.op === op);
}

// -- Tests ---------------------------------------------------------------------------------------------------

test('every manifest parses and validates against the Kubernetes API schema for its kind', () => {
  const manifests = loadManifests();
  assert.deepEqual(manifests.map((m) => m.doc['kind']).sort(), ['ConfigMap', 'Deployment', 'Service', 'ServiceAccount']);
  for (const m of manifests) {
    const model = MODELS[kubeKey(m.doc)];
    assert.ok(model, `${m.file}: no schema for ${kubeKey(m.doc)}; add its kubernetes-models class to MODELS`);
    assert.doesNotThrow(() => model.make(m.doc).validate(), `${m.file} document ${m.index}`);
    const name = asObject(m.doc['metadata'], `${m.file} metadata`)['name'];
    assert.ok(typeof name === 'string' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name), `${m.file}: bad metadata.name ${String(name)}`);
  }
});

test('the schema validation rejects a malformed Deployment (the check has teeth)', () => {
  const broken = structuredClone(only(loadManifests(), 'Deployment'));
  const { sidecar } = sidecarOf(broken);
  sidecar['ports'] = [{ name: 'http', containerPort: 'fifteen-thousand-one' }];
  assert.throws(() => new Deployment(broken as never).validate(), /containerPort/);
});

test('manifests use only fields the Kubernetes API defines (kubectl --validate=strict)', () => {
  assert.deepEqual(strictFieldErrors(loadManifests()), []);
});

test('the strict field check reports a misspelled field', () => {
  const manifests = loadManifests();
  const deployment = structuredClone(only(manifests, 'Deployment'));
  const { sidecar } = sidecarOf(deployment);
  sidecar['readinesProbe'] = sidecar['readinessProbe'];
  const errors = strictFieldErrors([{ file: 'deployment.yaml', index: 0, doc: deployment }]);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /readinesProbe/);
});

test('kustomization.yaml lists every manifest file exactly once', () => {
  const k = asObject(parseYaml(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8')), 'kustomization');
  assert.equal(k['apiVersion'], 'kustomize.config.k8s.io/v1beta1');
  assert.equal(k['kind'], 'Kustomization');
  const files = readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...(k['resources'] as string[])].sort(), files);
});

test('deployment: the sidecar has probes on the admin port, resources, a locked-down securityContext and pod env', () => {
  const manifests = loadManifests();
  const { pod, sidecar } = sidecarOf(only(manifests, 'Deployment'));
  assert.equal(sidecar['image'], 'proxy-wasm-sidecar:latest');
  assert.deepEqual(sidecar['args'], ['run', '-c', BOOTSTRAP_PATH, '--log-level', 'info']);

  const readiness = asObject(asObject(sidecar['readinessProbe'], 'readinessProbe')['httpGet'], 'readinessProbe.httpGet');
  assert.equal(readiness['path'], '/ready');
  assert.equal(containerPort(sidecar, readiness['port']), 15000);
  const liveness = asObject(sidecar['livenessProbe'], 'livenessProbe');
  const liveGet = asObject(liveness['httpGet'], 'livenessProbe.httpGet');
  assert.ok(['/server_info', '/ready'].includes(String(liveGet['path'])), `liveness path ${String(liveGet['path'])}`);
  assert.equal(containerPort(sidecar, liveGet['port']), 15000);
  // A restart must need a sustained failure, not one slow answer.
  const period = Number(liveness['periodSeconds'] ?? 10);
  const threshold = Number(liveness['failureThreshold'] ?? 3);
  assert.ok(period * threshold >= 30, `liveness restarts after ${period * threshold}s of failures`);
  assert.equal(containerPort(sidecar, 'http'), 15001);

  const env = new Map(asArray(sidecar['env'], 'env').map((e) => [e['name'], asObject(asObject(e['valueFrom'], 'valueFrom')['fieldRef'], 'fieldRef')['fieldPath']]));
  assert.equal(env.get('POD_NAME'), 'metadata.name');
  assert.equal(env.get('POD_NAMESPACE'), 'metadata.namespace');
  assert.equal(env.get('INSTANCE_IP'), 'status.podIP');

  const podSecurity = asObject(pod['securityContext'] ?? {}, 'pod securityContext');
  const containers = [...asArray(pod['initContainers'] ?? [], 'initContainers'), ...asArray(pod['containers'], 'containers')];
  for (const c of containers) {
    const what = String(c['name']);
    const res = asObject(c['resources'], `${what} resources`);
    for (const kind of ['requests', 'limits']) {
      const r = asObject(res[kind], `${what} resources.${kind}`);
      assert.ok(r['cpu'] !== undefined && r['memory'] !== undefined, `${what} resources.${kind} needs cpu and memory`);
    }
    const sc = asObject(c['securityContext'], `${what} securityContext`);
    assert.equal(sc['runAsNonRoot'] ?? podSecurity['runAsNonRoot'], true, `${what} runAsNonRoot`);
    assert.notEqual(sc['runAsUser'] ?? podSecurity['runAsUser'], 0, `${what} runs as uid 0`);
    assert.equal(sc['readOnlyRootFilesystem'], true, `${what} readOnlyRootFilesystem`);
    assert.equal(sc['allowPrivilegeEscalation'], false, `${what} allowPrivilegeEscalation`);
    assert.deepEqual(asObject(sc['capabilities'], `${what} capabilities`)['drop'], ['ALL'], `${what} capabilities.drop`);
  }
});

test('deployment: the bootstrap and the plugin reach the sidecar through its volumes', () => {
  const manifests = loadManifests();
  const cm = only(manifests, 'ConfigMap');
  const { pod, sidecar } = sidecarOf(only(manifests, 'Deployment'));
  const volumes = new Map(asArray(pod['volumes'], 'volumes').map((v) => [v['name'], v]));
  const mounts = asArray(sidecar['volumeMounts'], 'sidecar volumeMounts');
  const mountOf = (path: string): Json => {
    const m = mounts.find((v) => path === v['mountPath'] || path.startsWith(`${String(v['mountPath'])}/`));
    assert.ok(m, `nothing in the sidecar is mounted at ${path}`);
    return m;
  };

  const bootMount = mountOf(BOOTSTRAP_PATH);
  const bootVolume = asObject(volumes.get(bootMount['name']), `volume ${String(bootMount['name'])}`);
  assert.equal(asObject(bootVolume['configMap'], 'bootstrap volume configMap')['name'], asObject(cm['metadata'], 'metadata')['name']);
  if (bootMount['mountPath'] === BOOTSTRAP_PATH) assert.equal(bootMount['subPath'], 'bootstrap.yaml');

  // The Wasm file the bootstrap names lives on an emptyDir that an initContainer fills from the image.
  const bootstrap = asObject(parseYaml(bootstrapText(manifests)), 'bootstrap');
  const wasmFile = String(wasmConfig(bootstrap)['filename']);
  const pluginMount = mountOf(wasmFile);
  assert.ok(asObject(volumes.get(pluginMount['name']), 'plugins volume')['emptyDir'] !== undefined, 'plugins volume is not an emptyDir');
  const writer = asArray(pod['initContainers'], 'initContainers').find((c) =>
    asArray(c['volumeMounts'] ?? [], 'init volumeMounts').some((v) => v['name'] === pluginMount['name']));
  assert.ok(writer, 'no initContainer mounts the plugins volume');
  const argv = [...((writer['command'] as string[] | undefined) ?? []), ...((writer['args'] as string[] | undefined) ?? [])];
  assert.ok(argv.includes(wasmFile), `initContainer ${String(writer['name'])} does not write ${wasmFile}: ${argv.join(' ')}`);
  // ...and copies it from where the Dockerfile puts the plugins, built from a source that exists.
  const plugin = posix.basename(wasmFile, '.wasm');
  assert.ok(argv.includes(`/app/build/plugins/${plugin}.wasm`), `initContainer does not copy /app/build/plugins/${plugin}.wasm`);
  assert.ok(existsSync(join(REPO_ROOT, 'plugins', 'as', plugin, 'index.ts')) || existsSync(join(REPO_ROOT, 'plugins', 'wat', `${plugin}.wat`)), `no plugin source for ${plugin}`);
});

test('service: selects the pods and targets the sidecar listener, not the application', () => {
  const manifests = loadManifests();
  const deployment = only(manifests, 'Deployment');
  const svc = asObject(only(manifests, 'Service')['spec'], 'Service spec');
  const podLabels = asObject(asObject(asObject(asObject(deployment['spec'], 'spec')['template'], 'template')['metadata'], 'template metadata')['labels'], 'pod labels');
  for (const [k, v] of Object.entries(asObject(svc['selector'], 'selector'))) assert.equal(podLabels[k], v, `selector ${k}`);
  const { sidecar } = sidecarOf(deployment);
  const ports = asArray(svc['ports'], 'Service ports');
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!['name'], 'http');
  assert.equal(containerPort(sidecar, ports[0]!['targetPort'] ?? ports[0]!['port']), 15001);
  // The same port the bootstrap's listener binds.
  const bootstrap = asObject(parseYaml(bootstrapText(manifests)), 'bootstrap');
  const listener = asArray(asObject(bootstrap['static_resources'], 'static_resources')['listeners'], 'listeners')[0]!;
  assert.equal(asObject(asObject(listener['address'], 'address')['socket_address'], 'socket_address')['port_value'], 15001);
});

/** config of the bootstrap's envoy.filters.http.wasm filter (the first listener's HCM). */
function httpFilters(bootstrap: Json): Json[] {
  const listener = asArray(asObject(bootstrap['static_resources'], 'static_resources')['listeners'], 'listeners')[0]!;
  const chain = asArray(listener['filter_chains'], 'filter_chains')[0]!;
  const hcm = asArray(chain['filters'], 'filters').find((f) => f['name'] === 'envoy.filters.network.http_connection_manager');
  assert.ok(hcm, 'no http_connection_manager');
  return asArray(asObject(hcm['typed_config'], 'HCM typed_config')['http_filters'], 'http_filters');
}

function wasmConfig(bootstrap: Json): Json {
  const wasm = httpFilters(bootstrap).find((f) => f['name'] === 'envoy.filters.http.wasm');
  assert.ok(wasm, 'no envoy.filters.http.wasm filter');
  const config = asObject(asObject(wasm['typed_config'], 'wasm typed_config')['config'], 'wasm config');
  const vm = asObject(config['vm_config'], 'vm_config');
  return { ...config, filename: asObject(asObject(vm['code'], 'code')['local'], 'code.local')['filename'] };
}

test('configmap: the bootstrap uses ADS over the static xds-grpc cluster, as Istio and Higress configure it', () => {
  const manifests = loadManifests();
  const b = asObject(parseYaml(bootstrapText(manifests)), 'bootstrap');

  const node = asObject(b['node'], 'node');
  assert.match(String(node['id']), /^sidecar~[^~]+~[^~.]+\.[^~]+~[^~]+\.svc\.cluster\.local$/, 'node.id is not in Istio form');
  assert.ok(String(node['cluster']).length > 0, 'node.cluster');

  const dyn = asObject(b['dynamic_resources'], 'dynamic_resources');
  const ads = asObject(dyn['ads_config'], 'ads_config');
  assert.equal(ads['api_type'], 'GRPC');
  assert.equal(ads['transport_api_version'], 'V3');
  assert.equal(ads['set_node_on_first_message_only'], true);
  const services = asArray(ads['grpc_services'], 'grpc_services');
  assert.equal(services.length, 1);
  assert.equal(asObject(services[0]!['envoy_grpc'], 'envoy_grpc')['cluster_name'], 'xds-grpc');
  assert.deepEqual(dyn['cds_config'], { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' });

  const clusters = asArray(asObject(b['static_resources'], 'static_resources')['clusters'], 'clusters');
  const xds = clusters.find((c) => c['name'] === 'xds-grpc');
  assert.ok(xds, 'no static cluster xds-grpc');
  assert.equal(xds['type'], 'STRICT_DNS');
  const lbe = asArray(asArray(asObject(xds['load_assignment'], 'load_assignment')['endpoints'], 'endpoints')[0]!['lb_endpoints'], 'lb_endpoints');
  const sock = asObject(asObject(asObject(lbe[0]!['endpoint'], 'endpoint')['address'], 'address')['socket_address'], 'socket_address');
  assert.deepEqual(sock, { address: 'istiod.istio-system.svc', port_value: 15010 });
  const opts = asObject(asObject(xds['typed_extension_protocol_options'], 'typed_extension_protocol_options')['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'], 'HttpProtocolOptions');
  assert.equal(opts['@type'], 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
  assert.deepEqual(opts['explicit_http_config'], { http2_protocol_options: {} });

  const app = clusters.find((c) => c['name'] === 'app');
  assert.ok(app, 'no static cluster app');
  assert.match(JSON.stringify(app['load_assignment']), /"address":"127\.0\.0\.1","port_value":8080/);

  // Admin on 0.0.0.0 (the kubelet probes it) at the port the Deployment probes.
  const admin = asObject(asObject(asObject(b['admin'], 'admin')['address'], 'admin address')['socket_address'], 'admin socket_address');
  assert.equal(admin['address'], '0.0.0.0');
  const { sidecar } = sidecarOf(only(manifests, 'Deployment'));
  assert.equal(admin['port_value'], containerPort(sidecar, 'admin'));

  const filters = httpFilters(b);
  assert.deepEqual(filters.map((f) => f['name']), ['envoy.filters.http.wasm', 'envoy.filters.http.router']);
  const wasm = wasmConfig(b);
  assert.equal(wasm['root_id'], 'redis_gate');
  assert.equal(asObject(wasm['vm_config'], 'vm_config')['runtime'], 'envoy.wasm.runtime.v8');
  assert.equal(wasm['fail_open'], false);
  const conf = asObject(wasm['configuration'], 'configuration');
  assert.equal(conf['@type'], 'type.googleapis.com/google.protobuf.StringValue');
  assert.equal(conf['value'], 'cluster=outbound|6379||redis.default.svc.cluster.local\nttl=60\ntimeout=1000');
});

test("configmap: the bootstrap loads with the sidecar's own bootstrap loader", () => {
  const b = parseBootstrap(bootstrapText(loadManifests()), 'yaml');
  assert.deepEqual(b.ads, { apiType: 'GRPC', target: 'istiod.istio-system.svc:15010', clusterName: 'xds-grpc', setNodeOnFirstMessageOnly: true });
  assert.deepEqual(b.cds, { ads: true, initialFetchTimeoutMs: 0 });
  assert.deepEqual(b.admin, { address: '0.0.0.0', port: 15000 });
  assert.deepEqual(b.staticClusters.map((c) => c.name).sort(), ['app', 'xds-grpc']);
  assert.equal(b.staticListeners.length, 1);
});

const cliMissing = !existsSync(CLI);
test(
  'configmap: `cli.js validate` accepts the bootstrap and rejects a broken one',
  { skip: cliMissing ? `${CLI} does not exist yet (the CLI with its validate command has not landed); build it and rerun` : false },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'pws-deploy-'));
    try {
      // validate also compiles each plugin: point the container's plugin directory at the locally built plugins
      // (the initContainer copies the same files from build/plugins into the pod).
      const text = bootstrapText(loadManifests()).replaceAll('/etc/proxy-wasm-sidecar/plugins/', `${join(REPO_ROOT, 'build', 'plugins')}/`);
      const good = join(dir, 'bootstrap.yaml');
      writeFileSync(good, text);
      const ok = spawnSync(process.execPath, [CLI, 'validate', '-c', good], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(ok.status, 0, `validate exited ${String(ok.status ?? ok.signal)}\nstdout: ${ok.stdout}\nstderr: ${ok.stderr}`);

      // Without the cluster ads_config names, the same file must fail, or the check above proves nothing.
      const broken = asObject(parseYaml(text), 'bootstrap');
      const statics = asObject(broken['static_resources'], 'static_resources');
      statics['clusters'] = asArray(statics['clusters'], 'clusters').filter((c) => c['name'] !== 'xds-grpc');
      const bad = join(dir, 'broken.yaml');
      writeFileSync(bad, stringifyYaml(broken));
      const no = spawnSync(process.execPath, [CLI, 'validate', '-c', bad], { encoding: 'utf8', timeout: 60_000 });
      assert.notEqual(no.status, 0, `validate accepted a bootstrap whose ADS cluster is missing\nstdout: ${no.stdout}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('dockerfile: two node:20-slim stages, production deps, non-root user, cli.js entrypoint', () => {
  const stages = dockerStages(readFileSync(DOCKERFILE, 'utf8'));
  assert.equal(stages.length, 2, 'expected a build stage and a runtime stage');
  for (const s of stages) assert.match(s[0]!.args, /^node:20-slim(\s+AS\s+\S+)?$/i);
  const [build, runtime] = stages as [Instruction[], Instruction[]];
  const runs = (s: Instruction[]): string[] => s.filter((i) => i.op === 'RUN').map((i) => i.args);

  assert.ok(runs(build).some((r) => /\bnpm ci\b/.test(r)), 'build stage: npm ci');
  assert.ok(runs(build).some((r) => /\bnpx tsc -p \.(\s|$)/.test(r)), 'build stage: npx tsc -p .');
  assert.ok(runs(build).some((r) => /\bnode scripts\/build-plugins\.mjs\b/.test(r)), 'build stage: build the plugins');

  assert.ok(runs(runtime).some((r) => /\bnpm ci\b.*--omit=dev\b/.test(r)), 'runtime stage: npm ci --omit=dev');
  assert.ok(!runs(runtime).some((r) => /\bnpm (ci|install)\b/.test(r) && !/--omit=dev\b/.test(r)), 'runtime stage installs dev dependencies');
  const copies = runtime.filter((i) => i.op === 'COPY').map((i) => i.args);
  assert.ok(copies.some((c) => /--from=\S+\s+\S*dist\b/.test(c)), 'runtime stage: COPY --from the build stage of dist/');
  assert.ok(copies.some((c) => /--from=\S+\s+\S*build\/plugins\b/.test(c)), 'runtime stage: COPY --from the build stage of build/plugins/');

  const user = last(runtime, 'USER');
  assert.ok(user, 'runtime stage has no USER');
  const uid = user.args.split(':')[0]!;
  assert.ok(uid !== 'root' && uid !== '0', `runtime USER is ${user.args}`);
  // The Deployment's runAsNonRoot needs a numeric uid in the image; it must match the uid the pod asks for.
  assert.match(uid, /^\d+$/, 'USER should be numeric so that runAsNonRoot can be verified');
  const { sidecar } = sidecarOf(only(loadManifests(), 'Deployment'));
  assert.equal(asObject(sidecar['securityContext'], 'securityContext')['runAsUser'], Number(uid));

  const entry = execForm(last(runtime, 'ENTRYPOINT'), 'ENTRYPOINT');
  assert.equal(entry[0], 'node');
  assert.match(entry[1] ?? '', /(^|\/)dist\/src\/cli\.js$/);
  assert.deepEqual(execForm(last(runtime, 'CMD'), 'CMD'), ['run', '-c', BOOTSTRAP_PATH]);
  const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
  assert.ok(exposed.includes('15001') && exposed.includes('15000'), `EXPOSE ${exposed.join(' ')}`);
});

test('dockerfile: the build context keeps every path the Dockerfile copies', () => {
  const ignored = new Set(
    readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim().replace(/^\/|\/$/g, ''))
      .filter((l) => l !== '' && !l.startsWith('#')),
  );
  const sources = dockerStages(readFileSync(DOCKERFILE, 'utf8'))
    .flat()
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  assert.ok(sources.length > 0);
  for (const src of sources) {
    assert.ok(!ignored.has(src.split('/')[0]!), `.dockerignore excludes ${src}, which the Dockerfile copies`);
    assert.ok(existsSync(join(REPO_ROOT, src)), `the Dockerfile copies ${src}, which does not exist`);
  }
});
