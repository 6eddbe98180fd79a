import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, posix } from 'node:path';
import * as ts from 'typescript';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { REPO_ROOT } from '../support/plugins';
import {
  asArray, asObject, bootstrapConfigMap, BOOTSTRAP_PATH, containerPort, DOCKERFILE, initContainer, K8S_DIR, kubeKey, kustomization,
  loadManifests, only, podSpec, sidecarOf, type Json, type Manifest,
} from './support';

/**
 * Static checks of deploy/: every Kubernetes manifest against the API schema (the validators kubernetes-models
 * generates from the Kubernetes OpenAPI spec) and against the API's field names (what `kubectl apply
 * --validate=strict` enforces), the wiring between the Deployment, Service and bootstrap ConfigMap, the
 * bootstrap itself (through the sidecar's own loader and, when it exists, `cli.js validate`), and the
 * Dockerfile. No cluster, Docker or network needed.
 */

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

// -- Istio's resources ---------------------------------------------------------------------------------------
// kubernetes-models has no Istio CRDs, so their fields are checked against the API's own field names
// (istio/api networking/v1alpha3 sidecar.proto and envoy_filter.proto, as JSON): a misspelled field would be
// refused by the CRD's structural schema on apply, or worse, dropped.

type Shape = { readonly [field: string]: Shape | readonly [Shape] | 'scalar' | 'any' | readonly string[] };
const WORKLOAD_SELECTOR: Shape = { labels: 'any' };
const PORT: Shape = { number: 'scalar', protocol: ['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'TCP', 'TLS', 'MONGO', 'REDIS', 'MYSQL'], name: 'scalar', targetPort: 'scalar' };
const CAPTURE = ['DEFAULT', 'IPTABLES', 'NONE'];
const ISTIO_SPECS: Readonly<Record<string, Shape>> = {
  'networking.istio.io/v1/Sidecar': {
    workloadSelector: WORKLOAD_SELECTOR,
    ingress: [{ port: PORT, bind: 'scalar', captureMode: CAPTURE, defaultEndpoint: 'scalar', tls: 'any', connectionPool: 'any' }],
    egress: [{ port: PORT, bind: 'scalar', captureMode: CAPTURE, hosts: 'any' }],
    outboundTrafficPolicy: 'any',
    inboundConnectionPool: 'any',
  },
  'networking.istio.io/v1alpha3/EnvoyFilter': {
    workloadSelector: WORKLOAD_SELECTOR,
    targetRefs: 'any',
    priority: 'scalar',
    configPatches: [{
      applyTo: ['LISTENER', 'FILTER_CHAIN', 'NETWORK_FILTER', 'HTTP_FILTER', 'ROUTE_CONFIGURATION', 'VIRTUAL_HOST', 'HTTP_ROUTE', 'CLUSTER', 'EXTENSION_CONFIG', 'BOOTSTRAP', 'LISTENER_FILTER'],
      match: {
        context: ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY'],
        proxy: 'any',
        listener: {
          portNumber: 'scalar', name: 'scalar', listenerFilter: 'scalar',
          filterChain: { name: 'scalar', sni: 'scalar', transportProtocol: 'scalar', applicationProtocols: 'scalar', destinationPort: 'scalar', filter: { name: 'scalar', subFilter: { name: 'scalar' } } },
        },
        routeConfiguration: 'any',
        cluster: 'any',
      },
      patch: { operation: ['MERGE', 'ADD', 'REMOVE', 'INSERT_BEFORE', 'INSERT_AFTER', 'INSERT_FIRST', 'REPLACE'], value: 'any', filterClass: 'scalar' },
    }],
  },
};

function shapeErrors(v: unknown, shape: Shape | readonly [Shape] | 'scalar' | 'any' | readonly string[], path: string, out: string[]): void {
  if (shape === 'any') return;
  if (shape === 'scalar') {
    if (typeof v === 'object' && v !== null) out.push(`${path}: must be a scalar`);
    return;
  }
  if (Array.isArray(shape) && typeof shape[0] === 'string') {
    if (!(shape as readonly string[]).includes(String(v))) out.push(`${path}: '${String(v)}' is not one of ${shape.join(', ')}`);
    return;
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) out.push(`${path}: must be a list`);
    else v.forEach((item, i) => shapeErrors(item, shape[0] as Shape, `${path}[${i}]`, out));
    return;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    out.push(`${path}: must be an object`);
    return;
  }
  for (const [k, item] of Object.entries(v)) {
    const field = (shape as Shape)[k];
    if (field === undefined) out.push(`${path}.${k}: unknown field`);
    else shapeErrors(item, field, `${path}.${k}`, out);
  }
}

function istioErrors(m: Manifest): string[] {
  const spec = ISTIO_SPECS[kubeKey(m.doc)];
  assert.ok(spec, `${m.file}: no field list for ${kubeKey(m.doc)}`);
  const out: string[] = [];
  for (const k of Object.keys(m.doc)) if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(k)) out.push(`${m.file}: ${k}: unknown field`);
  shapeErrors(m.doc['spec'], spec, `${m.file}: spec`, out);
  return out;
}

const podLabels = (deployment: Json): Json => asObject(asObject(asObject(asObject(deployment['spec'], 'spec')['template'], 'template')['metadata'], 'template metadata')['labels'], 'pod labels');

// -- Tests ---------------------------------------------------------------------------------------------------

test('every manifest parses and validates against the Kubernetes API schema for its kind', () => {
  const manifests = loadManifests();
  assert.deepEqual(manifests.map((m) => m.doc['kind']).sort(), ['ConfigMap', 'Deployment', 'EnvoyFilter', 'Service', 'ServiceAccount', 'Sidecar']);
  for (const m of manifests) {
    const name = asObject(m.doc['metadata'], `${m.file} metadata`)['name'];
    assert.ok(typeof name === 'string' && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name), `${m.file}: bad metadata.name ${String(name)}`);
    if (ISTIO_SPECS[kubeKey(m.doc)]) {
      assert.deepEqual(istioErrors(m), [], `${m.file} document ${m.index}`);
      continue;
    }
    const model = MODELS[kubeKey(m.doc)];
    assert.ok(model, `${m.file}: no schema for ${kubeKey(m.doc)}; add its kubernetes-models class to MODELS`);
    assert.doesNotThrow(() => model.make(m.doc).validate(), `${m.file} document ${m.index}`);
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

test('the strict field checks report a misspelled field, Istio resources included', () => {
  const manifests = loadManifests();
  const deployment = structuredClone(only(manifests, 'Deployment'));
  const { sidecar } = sidecarOf(deployment);
  sidecar['readinesProbe'] = sidecar['readinessProbe'];
  const errors = strictFieldErrors([{ file: 'deployment.yaml', index: 0, doc: deployment }]);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(errors[0]!, /readinesProbe/);
  const sc = structuredClone(only(manifests, 'Sidecar'));
  sc['spec']['ingress'][0]['captureMod'] = 'NONE';
  assert.deepEqual(istioErrors({ file: 'istio.yaml', index: 0, doc: sc }), ['istio.yaml: spec.ingress[0].captureMod: unknown field']);
});

test('kustomization.yaml lists every manifest file exactly once', () => {
  const k = kustomization();
  assert.equal(k['apiVersion'], 'kustomize.config.k8s.io/v1beta1');
  assert.equal(k['kind'], 'Kustomization');
  const files = readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...(k['resources'] as string[])].sort(), files);
});

test('deployment: the sidecar has probes on the admin port, resources, a locked-down securityContext', () => {
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

test('deployment: render-bootstrap gets the pod identity from the downward API, as pilot-agent does', () => {
  const deployment = only(loadManifests(), 'Deployment');
  const init = initContainer(deployment, 'render-bootstrap');
  assert.equal(init['image'], sidecarOf(deployment).sidecar['image'], 'the sidecar image renders its own bootstrap');
  const env = new Map(asArray(init['env'], 'env').map((e) => [e['name'], e['valueFrom']?.['fieldRef']?.['fieldPath'] ?? e['value']]));
  assert.equal(env.get('POD_NAME'), 'metadata.name');
  assert.equal(env.get('POD_NAMESPACE'), 'metadata.namespace');
  assert.equal(env.get('INSTANCE_IP'), 'status.podIP');
  assert.equal(env.get('SERVICE_ACCOUNT'), 'spec.serviceAccountName');
  assert.equal(env.get('CANONICAL_SERVICE'), "metadata.labels['app.kubernetes.io/name']");
  assert.ok(podLabels(deployment)['app.kubernetes.io/name'], 'the label CANONICAL_SERVICE reads is on the pod');
  assert.equal(env.get('WORKLOAD_NAME'), asObject(deployment['metadata'], 'metadata')['name']);
  const podinfo = asArray(podSpec(deployment)['volumes'], 'volumes').find((v) => v['downwardAPI']);
  assert.deepEqual(podinfo?.['downwardAPI']?.['items'], [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }]);
});

test('deployment: the rendered bootstrap and the plugin reach the sidecar through its volumes', () => {
  const manifests = loadManifests();
  const deployment = only(manifests, 'Deployment');
  const { pod, sidecar } = sidecarOf(deployment);
  const volumes = new Map(asArray(pod['volumes'], 'volumes').map((v) => [v['name'], v]));
  const mountOf = (container: Json, path: string): Json => {
    const m = asArray(container['volumeMounts'], `${String(container['name'])} volumeMounts`).find((v) => path === v['mountPath'] || path.startsWith(`${String(v['mountPath'])}/`));
    assert.ok(m, `nothing in ${String(container['name'])} is mounted at ${path}`);
    return m;
  };

  // render-bootstrap writes the file the sidecar reads, on an emptyDir both mount.
  const init = initContainer(deployment, 'render-bootstrap');
  const argv = [...((init['command'] as string[] | undefined) ?? []), ...((init['args'] as string[] | undefined) ?? [])];
  assert.ok(argv.includes(BOOTSTRAP_PATH), `render-bootstrap does not write ${BOOTSTRAP_PATH}: ${argv.join(' ')}`);
  const written = mountOf(init, BOOTSTRAP_PATH);
  const read = mountOf(sidecar, BOOTSTRAP_PATH);
  assert.equal(written['name'], read['name']);
  assert.ok(asObject(volumes.get(read['name']), 'bootstrap volume')['emptyDir'] !== undefined, 'the bootstrap volume is not an emptyDir');
  assert.equal(read['readOnly'], true);
  // ...from the template and script of the bootstrap ConfigMap.
  const cm = bootstrapConfigMap(manifests);
  for (const key of Object.keys(cm.data)) {
    const path = argv.find((a) => a.endsWith(`/${key}`));
    assert.ok(path, `render-bootstrap does not use ${key}`);
    assert.equal(asObject(volumes.get(mountOf(init, path)['name']), 'template volume')['configMap']?.['name'], cm.name);
  }

  // The Wasm file the EnvoyFilter names lives on an emptyDir that an initContainer fills from the image.
  const wasm = only(manifests, 'EnvoyFilter')['spec']['configPatches'][0]['patch']['value']['typed_config']['config'];
  const wasmFile = String(wasm['vm_config']['code']['local']['filename']);
  const pluginMount = mountOf(sidecar, wasmFile);
  assert.ok(asObject(volumes.get(pluginMount['name']), 'plugins volume')['emptyDir'] !== undefined, 'plugins volume is not an emptyDir');
  const writer = asArray(pod['initContainers'], 'initContainers').find((c) =>
    asArray(c['volumeMounts'] ?? [], 'init volumeMounts').some((v) => v['name'] === pluginMount['name'] && v['readOnly'] !== true));
  assert.ok(writer, 'no initContainer writes the plugins volume');
  const copy = [...((writer['command'] as string[] | undefined) ?? []), ...((writer['args'] as string[] | undefined) ?? [])];
  assert.ok(copy.includes(wasmFile), `initContainer ${String(writer['name'])} does not write ${wasmFile}: ${copy.join(' ')}`);
  // ...and copies it from where the Dockerfile puts the plugins, built from a source that exists.
  const plugin = posix.basename(wasmFile, '.wasm');
  assert.ok(copy.includes(`/app/build/plugins/${plugin}.wasm`), `initContainer does not copy /app/build/plugins/${plugin}.wasm`);
  assert.ok(existsSync(join(REPO_ROOT, 'plugins', 'as', plugin, 'index.ts')) || existsSync(join(REPO_ROOT, 'plugins', 'wat', `${plugin}.wat`)), `no plugin source for ${plugin}`);
});

test('service: selects the pods and targets the listener istiod binds for the Sidecar resource, not the application', () => {
  const manifests = loadManifests();
  const deployment = only(manifests, 'Deployment');
  const svc = asObject(only(manifests, 'Service')['spec'], 'Service spec');
  for (const [k, v] of Object.entries(asObject(svc['selector'], 'selector'))) assert.equal(podLabels(deployment)[k], v, `selector ${k}`);
  const { sidecar } = sidecarOf(deployment);
  const ports = asArray(svc['ports'], 'Service ports');
  assert.equal(ports.length, 1);
  assert.equal(ports[0]!['name'], 'http');
  const target = containerPort(sidecar, ports[0]!['targetPort'] ?? ports[0]!['port']);
  assert.equal(target, 15001);
  const ingress = asArray(only(manifests, 'Sidecar')['spec']['ingress'], 'Sidecar ingress')[0]!;
  assert.equal(ingress['port']['number'], target, 'the Sidecar ingress listener is the port the Service targets');
  assert.equal(ingress['captureMode'], 'NONE', 'no iptables: the listener binds its port');
  assert.equal(ingress['defaultEndpoint'], '127.0.0.1:8080');
  const app = asArray(podSpec(deployment)['containers'], 'containers').find((c) => c['name'] === 'app')!;
  assert.ok((app['args'] as string[]).includes('-listen=127.0.0.1:8080'), 'the application listens where the Sidecar ingress forwards');
});

test('istio: the Sidecar and the EnvoyFilter select these pods, and the filter is the redis-gate plugin before the router', () => {
  const manifests = loadManifests();
  const labels = podLabels(only(manifests, 'Deployment'));
  for (const kind of ['Sidecar', 'EnvoyFilter']) {
    for (const [k, v] of Object.entries(asObject(only(manifests, kind)['spec']['workloadSelector']['labels'], `${kind} selector`))) assert.equal(labels[k], v, `${kind} selector ${k}`);
  }
  const patch = asArray(only(manifests, 'EnvoyFilter')['spec']['configPatches'], 'configPatches')[0]!;
  assert.equal(patch['applyTo'], 'HTTP_FILTER');
  assert.equal(patch['match']['context'], 'SIDECAR_INBOUND');
  assert.equal(patch['match']['listener']['portNumber'], 15001);
  assert.equal(patch['match']['listener']['filterChain']['filter']['subFilter']['name'], 'envoy.filters.http.router');
  assert.equal(patch['patch']['operation'], 'INSERT_BEFORE');
  const filter = patch['patch']['value'];
  assert.equal(filter['name'], 'envoy.filters.http.wasm');
  assert.equal(filter['typed_config']['@type'], 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm');
  const config = filter['typed_config']['config'];
  assert.equal(config['root_id'], 'redis_gate');
  assert.equal(config['vm_config']['runtime'], 'envoy.wasm.runtime.v8');
  assert.equal(config['fail_open'], false);
  assert.deepEqual(config['configuration'], { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: 'cluster=outbound|6379||redis.default.svc.cluster.local\nttl=60\ntimeout=1000' });
});

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
  const script = entry.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  assert.match(entry[script] ?? '', /(^|\/)dist\/src\/cli\.js$/);
  // The node flags before the script are ones this Node accepts (a Node upgrade that drops one fails here).
  const flags = entry.slice(1, script);
  const check = spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' });
  assert.equal(check.status, 0, `node ${flags.join(' ')}: ${check.stderr}`);
  assert.deepEqual(execForm(last(runtime, 'CMD'), 'CMD'), ['run', '-c', BOOTSTRAP_PATH], 'the image runs the bootstrap the Deployment renders');
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
