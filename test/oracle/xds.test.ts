// xDS against Envoy: one control plane (src/testing/xds-control-plane.ts, a real gRPC ADS server) serves the same
// SotW CDS responses to Envoy and to the sidecar, both subscribed over ADS. For each response of the corpus the
// control plane records each side's ACK or NACK (and the version it reports), and each side's kept configuration
// (/config_dump?resource=dynamic_active_clusters and dynamic_warming_clusters: names and version_info) must match.
import { after, before, describe, it } from 'node:test';
import { fromProtoJson, type ProtoObject } from '../../src/xds/proto-json';
import { CDS_TYPE_URL, EDS_TYPE_URL, loadEnvoyProtos, type AnyMessage } from '../../src/xds/protos';
import { XdsTestServer } from '../support/xds-server';
import { assertExplained, Oracle, type Difference, type SideName } from './harness';

const protos = loadEnvoyProtos();

function staticCluster(name: string, port: number): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

function edsCluster(name: string): Record<string, unknown> {
  // No ClusterLoadAssignment is ever served: the cluster warms until its initial_fetch_timeout (1 s, not 15).
  return { name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '1s' } } };
}

/** A Cluster Any built from proto3 JSON, then `mutate`d as a plain protobufjs object (for what JSON cannot say). */
function clusterAny(json: Record<string, unknown>, mutate?: (plain: ProtoObject) => void): AnyMessage {
  const plain = fromProtoJson(protos, protos.Cluster, json);
  mutate?.(plain);
  return { type_url: CDS_TYPE_URL, value: protos.Cluster.encode(plain).finish() };
}

const base = (): AnyMessage => clusterAny(staticCluster('base', 10001));
const valid = (): AnyMessage[] => [base(), clusterAny(staticCluster('one', 10002))];

/**
 * The corpus: each entry is one whole SotW CDS response (so every one carries `base`, or it would be removed).
 * The order matters where a case needs a state to act on: `valid` before an invalid response shows whether the
 * rejection also applied the response's removals (of `one`) or kept everything; `remove-eds` takes the EDS
 * cluster away again so that its warming does not leak into later cases.
 */
const CORPUS: ReadonlyArray<readonly [string, () => AnyMessage[]]> = [
  ['valid', valid],
  ['empty-cluster-name', () => [base(), clusterAny(staticCluster('', 10003))]],
  ['port-above-65535', () => [base(), clusterAny(staticCluster('big-port', 10004), (p) => {
    const la = p['load_assignment'] as { endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: Record<string, unknown> } } }> }> };
    la.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address['port_value'] = 70000;
  })]],
  ['wrong-type-url', () => [base(), { type_url: EDS_TYPE_URL, value: protos.ClusterLoadAssignment.encode(fromProtoJson(protos, protos.ClusterLoadAssignment, { cluster_name: 'cla' })).finish() }]],
  ['typed-config-does-not-unpack', () => [base(), clusterAny(staticCluster('bad-any', 10010), (p) => {
    p['transport_socket'] = { name: 'envoy.transport_sockets.tls', typed_config: { type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', value: Buffer.from([0xff, 0xff, 0xff]) } };
  })]],
  ['valid-again', valid],
  ['typed-config-unknown-type', () => [base(), clusterAny(staticCluster('unknown-any', 10011), (p) => {
    p['transport_socket'] = { name: 'custom', typed_config: { type_url: 'type.googleapis.com/example.DoesNotExist', value: Buffer.alloc(0) } };
  })]],
  ['valid-third-time', valid],
  ['not-a-cluster-at-all', () => [base(), { type_url: CDS_TYPE_URL, value: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]) }]],
  ['duplicate-names', () => [base(), clusterAny(staticCluster('dup', 10005)), clusterAny(staticCluster('dup', 10006))]],
  ['eds-without-eds-config', () => [base(), clusterAny({ name: 'eds-bare', type: 'EDS', connect_timeout: '1s' })]],
  ['eds-with-ads', () => [base(), clusterAny(edsCluster('eds-ads'))]],
  ['remove-eds', () => [base()]],
  ['one-valid-one-invalid', () => [base(), clusterAny(staticCluster('good', 10007)), clusterAny(staticCluster('bad', 10008), (p) => {
    p['connect_timeout'] = { seconds: 0, nanos: 0 };
  })]],
  ['unknown-cluster-type', () => [base(), clusterAny(staticCluster('odd-type', 10009), (p) => {
    p['type'] = 42;
  })]],
  ['recovery', () => [base(), clusterAny(staticCluster('after', 10012))]],
  ['remove-all-but-base', () => [base()]],
];

describe('oracle: xDS CDS ACK/NACK and kept configuration (Envoy vs sidecar)', () => {
  let xds: XdsTestServer;
  let oracle: Oracle;
  const streamOf = new Map<SideName, number>();

  before(async () => {
    xds = await XdsTestServer.start();
    xds.setClusters([staticCluster('base', 10001)]);
    oracle = await Oracle.start({ name: 'xds', filters: [], clusters: [{ name: 'upstream' }], ads: { port: xds.port, initialFetchTimeout: '5s' } });
    await xds.waitFor(() => xds.requests.some((r) => r.nodeId === 'oracle-envoy') && xds.requests.some((r) => r.nodeId === 'oracle-sidecar'), 20_000, 'both ADS streams');
    for (const r of xds.requests) {
      if (r.nodeId === 'oracle-envoy') streamOf.set('envoy', r.stream);
      if (r.nodeId === 'oracle-sidecar') streamOf.set('sidecar', r.stream);
    }
    // Both ACKed the initial state (version 1) before the corpus starts.
    await xds.waitFor(() => (['envoy', 'sidecar'] as const).every((s) => xds.requests.some((r) => r.stream === streamOf.get(s) && r.typeUrl === CDS_TYPE_URL && r.versionInfo === '1')), 20_000, 'initial ACKs');
  });

  after(async () => {
    await oracle?.close();
    await xds?.close();
  });

  async function kept(side: SideName, resource: string): Promise<string[]> {
    const doc = (await oracle.adminJson(side, `/config_dump?resource=${resource}`)) as { configs?: Array<{ version_info?: string; cluster?: { name?: string } }> };
    return (doc.configs ?? []).map((c) => `${c.cluster?.name ?? '?'}@${c.version_info ?? ''}`).sort();
  }

  for (const [id, resources] of CORPUS) {
    it(id, async (t) => {
      const version = `v-${id}`;
      const nonce = xds.sendRaw({ type_url: CDS_TYPE_URL, version_info: version, resources: resources() });
      const reply = (side: SideName) => xds.requests.find((r) => r.stream === streamOf.get(side) && r.typeUrl === CDS_TYPE_URL && r.responseNonce === nonce);
      await xds.waitFor(() => reply('envoy') !== undefined && reply('sidecar') !== undefined, 20_000, `both sides to answer nonce ${nonce}`);
      const e = reply('envoy')!;
      const s = reply('sidecar')!;
      const caseId = `xds/${id}`;
      const diffs: Difference[] = [];
      const decision = (r: typeof e): string => (r.errorDetail ? 'NACK' : 'ACK');
      if (decision(e) !== decision(s)) diffs.push({ case: caseId, field: 'xds.decision', envoy: decision(e), sidecar: decision(s) });
      if (e.versionInfo !== s.versionInfo) diffs.push({ case: caseId, field: 'xds.version_info', envoy: e.versionInfo, sidecar: s.versionInfo });
      if (e.errorDetail || s.errorDetail) t.diagnostic(`error_detail: envoy ${JSON.stringify(e.errorDetail?.message)} | sidecar ${JSON.stringify(s.errorDetail?.message)}`);
      for (const resource of ['dynamic_active_clusters', 'dynamic_warming_clusters']) {
        const a = await kept('envoy', resource);
        const b = await kept('sidecar', resource);
        t.diagnostic(`${resource}: envoy [${a.join(' ')}] sidecar [${b.join(' ')}]`);
        if (a.join(' ') !== b.join(' ')) diffs.push({ case: caseId, field: `xds.${resource}`, envoy: a, sidecar: b });
      }
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  }

  it('admin shapes with xDS clusters (STATIC and EDS with endpoints)', async (t) => {
    xds.setClusters([staticCluster('base', 10001), edsCluster('eds-live')]);
    xds.setEndpoints([{ cluster_name: 'eds-live', endpoints: [{ locality: { region: 'r1', zone: 'z1' }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 10020 } } }, health_status: 'HEALTHY', load_balancing_weight: 3 }] }] }]);
    xds.push();
    const cds = xds.version(CDS_TYPE_URL);
    const eds = xds.version(EDS_TYPE_URL);
    const acked = (side: SideName, type: string, v: string): boolean => xds.requests.some((r) => r.stream === streamOf.get(side) && r.typeUrl === type && r.versionInfo === v && !r.errorDetail);
    await xds.waitFor(() => (['envoy', 'sidecar'] as const).every((side) => acked(side, CDS_TYPE_URL, cds) && acked(side, EDS_TYPE_URL, eds)), 20_000, 'both to ACK CDS and EDS');
    const diffs: Difference[] = [];
    for (const path of ['/clusters?format=json', '/config_dump', '/config_dump?include_eds', '/config_dump?resource=dynamic_active_clusters']) {
      diffs.push(...(await oracle.shapeDiffs(path)).map((d) => ({ ...d, case: 'xds/admin' })));
    }
    assertExplained(diffs, (m) => t.diagnostic(m));
  });
});
