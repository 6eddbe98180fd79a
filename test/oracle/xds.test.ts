// xDS against Envoy: one control plane (src/testing/xds-control-plane.ts, a real gRPC ADS server) serves the same
// CDS responses to Envoy and to the sidecar, both subscribed over ADS, in SotW (GRPC) and in Delta (DELTA_GRPC).
// For each response of the corpus the control plane records each side's ACK or NACK (and, in SotW, the version
// it reports), and each side's kept configuration (/config_dump?resource=dynamic_active_clusters and
// dynamic_warming_clusters: names and version_info) must match.
import { after, before, describe, it } from 'node:test';
import { fromProtoJson, type ProtoObject } from '../../src/xds/proto-json';
import { CDS_TYPE_URL, EDS_TYPE_URL, loadEnvoyProtos, type AnyMessage } from '../../src/xds/protos';
import { until } from '../support/until';
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

/** A resource of a response: its name (what Delta's Resource wrapper carries) and its Any. */
interface Named {
  readonly name: string;
  readonly any: AnyMessage;
}

/** A Cluster Any built from proto3 JSON, then `mutate`d as a plain protobufjs object (for what JSON cannot say). */
function clusterAny(json: Record<string, unknown>, mutate?: (plain: ProtoObject) => void): Named {
  const plain = fromProtoJson(protos, protos.Cluster, json);
  mutate?.(plain);
  return { name: String(json['name']), any: { type_url: CDS_TYPE_URL, value: protos.Cluster.encode(plain).finish() } };
}

const base = (): Named => clusterAny(staticCluster('base', 10001));
const valid = (): Named[] => [base(), clusterAny(staticCluster('one', 10002))];

/**
 * The corpus: each entry is one whole SotW CDS response (so every one carries `base`, or it would be removed).
 * The order matters where a case needs a state to act on: `valid` before an invalid response shows whether the
 * rejection also applied the response's removals (of `one`) or kept everything; `remove-eds` takes the EDS
 * cluster away again so that its warming does not leak into later cases. Delta gets the same resources but `base`
 * (unchanged, never re-sent), each wrapped in a Resource with version v-<case>, and the third element as
 * removed_resources (SotW removes by leaving out).
 */
const CORPUS: ReadonlyArray<readonly [string, () => Named[], (readonly string[])?]> = [
  ['valid', valid],
  ['empty-cluster-name', () => [base(), clusterAny(staticCluster('', 10003))]],
  ['port-above-65535', () => [base(), clusterAny(staticCluster('big-port', 10004), (p) => {
    const la = p['load_assignment'] as { endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: Record<string, unknown> } } }> }> };
    la.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address['port_value'] = 70000;
  })]],
  ['wrong-type-url', () => [base(), { name: 'cla', any: { type_url: EDS_TYPE_URL, value: protos.ClusterLoadAssignment.encode(fromProtoJson(protos, protos.ClusterLoadAssignment, { cluster_name: 'cla' })).finish() } }]],
  ['typed-config-does-not-unpack', () => [base(), clusterAny(staticCluster('bad-any', 10010), (p) => {
    p['transport_socket'] = { name: 'envoy.transport_sockets.tls', typed_config: { type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', value: Buffer.from([0xff, 0xff, 0xff]) } };
  })]],
  ['valid-again', valid],
  ['typed-config-unknown-type', () => [base(), clusterAny(staticCluster('unknown-any', 10011), (p) => {
    p['transport_socket'] = { name: 'custom', typed_config: { type_url: 'type.googleapis.com/example.DoesNotExist', value: Buffer.alloc(0) } };
  })]],
  ['valid-third-time', valid],
  ['not-a-cluster-at-all', () => [base(), { name: 'garbage', any: { type_url: CDS_TYPE_URL, value: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]) } }]],
  ['duplicate-names', () => [base(), clusterAny(staticCluster('dup', 10005)), clusterAny(staticCluster('dup', 10006))]],
  ['eds-without-eds-config', () => [base(), clusterAny({ name: 'eds-bare', type: 'EDS', connect_timeout: '1s' })]],
  ['eds-with-ads', () => [base(), clusterAny(edsCluster('eds-ads'))]],
  ['remove-eds', () => [base()], ['eds-ads']],
  ['one-valid-one-invalid', () => [base(), clusterAny(staticCluster('good', 10007)), clusterAny(staticCluster('bad', 10008), (p) => {
    p['connect_timeout'] = { seconds: 0, nanos: 0 };
  })]],
  ['unknown-cluster-type', () => [base(), clusterAny(staticCluster('odd-type', 10009), (p) => {
    p['type'] = 42;
  })]],
  ['recovery', () => [base(), clusterAny(staticCluster('after', 10012))]],
  ['remove-all-but-base', () => [base()], ['one', 'dup', 'good', 'after', 'eds-ads']],
];

for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  const mode = apiType === 'GRPC' ? 'sotw' : 'delta';
  describe(`oracle: xDS ${mode} CDS ACK/NACK and kept configuration (Envoy vs sidecar)`, () => {
    let xds: XdsTestServer;
    let oracle: Oracle;
    const streamOf = new Map<SideName, number>();
    const cds = (side: SideName) => xds.requests.filter((r) => r.stream === streamOf.get(side) && r.typeUrl === CDS_TYPE_URL);

    before(async () => {
      xds = await XdsTestServer.start();
      xds.setClusters([staticCluster('base', 10001)]);
      oracle = await Oracle.start({ name: `xds-${mode}`, filters: [], clusters: [{ name: 'upstream' }], ads: { port: xds.port, initialFetchTimeout: '5s', apiType } });
      await xds.waitFor(() => xds.requests.some((r) => r.nodeId === 'oracle-envoy') && xds.requests.some((r) => r.nodeId === 'oracle-sidecar'), 20_000, 'both ADS streams');
      for (const r of xds.requests) {
        if (r.nodeId === 'oracle-envoy') streamOf.set('envoy', r.stream);
        if (r.nodeId === 'oracle-sidecar') streamOf.set('sidecar', r.stream);
      }
      // Both ACKed the initial state before the corpus starts.
      await xds.waitFor(() => (['envoy', 'sidecar'] as const).every((side) => cds(side).some((r) => r.responseNonce !== '' && !r.errorDetail)), 20_000, 'initial ACKs');
    });

    after(async () => {
      await oracle?.close();
      await xds?.close();
    });

    async function kept(side: SideName, resource: string): Promise<string[]> {
      const doc = (await oracle.adminJson(side, `/config_dump?resource=${resource}`)) as { configs?: Array<{ version_info?: string; cluster?: { name?: string } }> };
      return (doc.configs ?? []).map((c) => `${c.cluster?.name ?? '?'}@${c.version_info ?? ''}`).sort();
    }

    for (const [id, resources, removed] of CORPUS) {
      it(id, async (t) => {
        const version = `v-${id}`;
        const nonce = apiType === 'GRPC'
          ? xds.sendRaw({ type_url: CDS_TYPE_URL, version_info: version, resources: resources().map((r) => r.any) })
          : xds.sendRawDelta({
            type_url: CDS_TYPE_URL,
            system_version_info: version,
            resources: resources().filter((r) => r.name !== 'base').map((r) => ({ name: r.name, version, resource: r.any })),
            removed_resources: removed ?? [],
          });
        const reply = (side: SideName) => cds(side).find((r) => r.responseNonce === nonce);
        await xds.waitFor(() => reply('envoy') !== undefined && reply('sidecar') !== undefined, 20_000, `both sides to answer nonce ${nonce}`);
        const e = reply('envoy')!;
        const s = reply('sidecar')!;
        const caseId = `xds-${mode}/${id}`;
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
      const before = xds.requests.length;
      xds.push();
      // An ACK of each type after the push, on each side (Delta requests carry no version: the nonce tells).
      const acked = (side: SideName, type: string): boolean => xds.requests.slice(before).some((r) => r.stream === streamOf.get(side) && r.typeUrl === type && r.responseNonce !== '' && !r.errorDetail);
      await xds.waitFor(() => (['envoy', 'sidecar'] as const).every((side) => acked(side, CDS_TYPE_URL) && acked(side, EDS_TYPE_URL)), 20_000, 'both to ACK CDS and EDS');
      await until(async () => (await kept('envoy', 'dynamic_active_clusters')).some((c) => c.startsWith('eds-live@')) && (await kept('sidecar', 'dynamic_active_clusters')).some((c) => c.startsWith('eds-live@')), 20_000, 'eds-live active on both');
      const diffs: Difference[] = [];
      for (const path of ['/clusters?format=json', '/config_dump', '/config_dump?include_eds', '/config_dump?resource=dynamic_active_clusters']) {
        diffs.push(...(await oracle.shapeDiffs(path)).map((d) => ({ ...d, case: `xds-${mode}/admin` })));
      }
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  });
}
