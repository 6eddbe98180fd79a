import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../support/plugins';

/** Reading deploy/kubernetes as kubectl apply -k would see it, and rendering its per-pod bootstrap. */

export const K8S_DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
export const DOCKERFILE = join(REPO_ROOT, 'deploy', 'Dockerfile');
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
export const SIDECAR = 'proxy-wasm-sidecar';
export const BOOTSTRAP_PATH = '/etc/proxy-wasm-sidecar/bootstrap/bootstrap.yaml';

export type Json = Record<string, any>;

export interface Manifest {
  readonly file: string;
  readonly index: number;
  readonly doc: Json;
}

export function asObject(v: unknown, what: string): Json {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is not an object`);
  return v as Json;
}

export function asArray(v: unknown, what: string): Json[] {
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v as Json[];
}

export function kubeKey(doc: Json): string {
  return `${String(doc['apiVersion'])}/${String(doc['kind'])}`;
}

export function kustomization(): Json {
  return asObject(parseYaml(readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8')), 'kustomization');
}

/** The bootstrap ConfigMap (configmap.yaml): the template and the script that renders it, by key. */
export function bootstrapConfigMap(manifests: readonly Manifest[] = loadManifests()): { name: string; data: Record<string, string> } {
  const cm = only(manifests, 'ConfigMap');
  const data = asObject(cm['data'], 'ConfigMap data') as Record<string, string>;
  return { name: String(asObject(cm['metadata'], 'ConfigMap metadata')['name']), data };
}

/** Every manifest file's documents (kustomization.yaml aside), in file order. */
export function loadManifests(): Manifest[] {
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

export function only(manifests: readonly Manifest[], kind: string): Json {
  const found = manifests.filter((m) => m.doc['kind'] === kind);
  assert.equal(found.length, 1, `expected exactly one ${kind}, found ${found.length}`);
  return found[0]!.doc;
}

export function podSpec(deployment: Json): Json {
  return asObject(asObject(asObject(deployment['spec'], 'spec')['template'], 'template')['spec'], 'pod spec');
}

export function sidecarOf(deployment: Json): { pod: Json; sidecar: Json } {
  const pod = podSpec(deployment);
  const sidecar = asArray(pod['containers'], 'containers').find((c) => c['name'] === SIDECAR);
  assert.ok(sidecar, `no container named ${SIDECAR}`);
  return { pod, sidecar };
}

export function initContainer(deployment: Json, name: string): Json {
  const c = asArray(podSpec(deployment)['initContainers'], 'initContainers').find((i) => i['name'] === name);
  assert.ok(c, `no initContainer ${name}`);
  return c;
}

export function containerPort(container: Json, nameOrNumber: unknown): number {
  const ports = asArray(container['ports'], `${String(container['name'])} ports`);
  if (typeof nameOrNumber === 'number') {
    assert.ok(ports.some((p) => p['containerPort'] === nameOrNumber), `${String(container['name'])} does not declare port ${nameOrNumber}`);
    return nameOrNumber;
  }
  const port = ports.find((p) => p['name'] === nameOrNumber);
  assert.ok(port, `${String(container['name'])} has no port named ${String(nameOrNumber)}`);
  return Number(port['containerPort']);
}

/** A pod as the kubelet would fill the render-bootstrap container's downward API env and labels file. */
export interface PodFacts {
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
}

export const EXAMPLE_POD: PodFacts = {
  name: 'echo-7d4b9c6f5-x2k8p',
  namespace: 'shop',
  ip: '10.244.1.17',
  serviceAccount: 'echo',
  labels: { 'app.kubernetes.io/name': 'echo', 'pod-template-hash': '7d4b9c6f5', 'sidecar.istio.io/inject': 'false' },
};

/** The downward API value of a fieldRef for `pod` (the paths the Deployment uses). */
function fieldValue(pod: PodFacts, fieldPath: string): string {
  const label = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
  if (label) return pod.labels[label[1]!] ?? '';
  const values: Record<string, string> = {
    'metadata.name': pod.name,
    'metadata.namespace': pod.namespace,
    'status.podIP': pod.ip,
    'spec.serviceAccountName': pod.serviceAccount,
  };
  assert.ok(fieldPath in values, `the test does not know the downward API field ${fieldPath}`);
  return values[fieldPath]!;
}

/** The kubelet's labels file: `key="value"` lines, sorted, Go-quoted. */
function labelsFile(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join('\n');
}

export interface Rendered {
  readonly status: number | null;
  readonly stderr: string;
  readonly text: string;
}

/**
 * Runs the render-bootstrap initContainer's command as the Deployment declares it, with the paths of its
 * volume mounts mapped to a temp dir (template and script from the bootstrap ConfigMap, the podinfo labels
 * file, the bootstrap emptyDir) and its env resolved for `pod`. `env` overrides (undefined removes a variable).
 */
export function renderBootstrap(deployment: Json, pod: PodFacts = EXAMPLE_POD, env: Record<string, string | undefined> = {}): Rendered {
  const init = initContainer(deployment, 'render-bootstrap');
  const dir = mkdtempSync(join(tmpdir(), 'pws-render-'));
  try {
    const volumes = new Map(asArray(podSpec(deployment)['volumes'], 'volumes').map((v) => [v['name'], v]));
    const mounts = new Map<string, string>(); // container path -> local dir
    for (const m of asArray(init['volumeMounts'], 'render-bootstrap volumeMounts')) {
      const local = join(dir, String(m['name']));
      const volume = asObject(volumes.get(m['name']), `volume ${String(m['name'])}`);
      mkdirSync(local, { recursive: true });
      if (volume['configMap']) {
        const cm = bootstrapConfigMap();
        assert.equal(volume['configMap']['name'], cm.name, 'the template volume is the bootstrap ConfigMap');
        for (const [k, v] of Object.entries(cm.data)) writeFileSync(join(local, k), v);
      } else if (volume['downwardAPI']) {
        for (const item of asArray(volume['downwardAPI']['items'], 'downwardAPI items')) {
          assert.equal(item['fieldRef']['fieldPath'], 'metadata.labels');
          writeFileSync(join(local, String(item['path'])), labelsFile(pod.labels));
        }
      } else {
        assert.ok(volume['emptyDir'], `volume ${String(m['name'])} is neither the ConfigMap, the downward API nor an emptyDir`);
      }
      mounts.set(String(m['mountPath']), local);
    }
    const local = (p: string): string => {
      for (const [mount, at] of mounts) if (p === mount || p.startsWith(`${mount}/`)) return at + p.slice(mount.length);
      return p;
    };
    const argv = [...((init['command'] as string[] | undefined) ?? []), ...((init['args'] as string[] | undefined) ?? [])];
    assert.equal(argv[0], 'node');
    const childEnv: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
    for (const e of asArray(init['env'] ?? [], 'render-bootstrap env')) {
      childEnv[String(e['name'])] = e['value'] !== undefined ? String(e['value']) : fieldValue(pod, String(e['valueFrom']['fieldRef']['fieldPath']));
    }
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete childEnv[k];
      else childEnv[k] = v;
    }
    const run = spawnSync(process.execPath, argv.slice(1).map(local), { encoding: 'utf8', env: childEnv, timeout: 30_000 });
    let text = '';
    try {
      text = readFileSync(local(BOOTSTRAP_PATH), 'utf8');
    } catch {
      text = '';
    }
    return { status: run.status, stderr: run.stderr, text };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
