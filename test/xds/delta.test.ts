import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdsClient } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, EDS_TYPE_URL } from '../../src/xds/protos';
import type { ClusterManager, ClusterEvent } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager, until } from '../support/xds-fixtures';

describe('ADS Delta', () => {
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  let events: ClusterEvent[];

  before(async () => {
    server = await XdsTestServer.start();
    server.setClusters([edsCluster('d1'), edsCluster('d2')]);
    server.setEndpoints([cla('d1', [['10.3.0.1', 1]]), cla('d2', [['10.3.0.2', 2]])]);
    ({ cm, events } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'n1' }, sink: cm, apiType: 'DELTA_GRPC', backoff: { baseMs: 20, maxMs: 100 } });
    client.start();
    await client.initialized;
  });

  after(async () => {
    await client.close();
    cm.close();
    await server.close();
  });

  it('subscribes with "*" for CDS and by name for EDS, and ACKs with the nonce', async () => {
    assert.deepEqual(hostKeys(cm, 'd1'), ['10.3.0.1:1']);
    assert.deepEqual(hostKeys(cm, 'd2'), ['10.3.0.2:2']);
    await server.waitFor(() => server.requestsFor(EDS_TYPE_URL).length >= 2, 5000, 'EDS ACK');
    const cds = server.requestsFor(CDS_TYPE_URL);
    assert.deepEqual(cds[0]?.subscribe, ['*']);
    assert.equal(cds[0]?.nodeId, 'n1');
    assert.notEqual(cds[1]?.responseNonce, '');
    assert.equal(cds[1]?.errorDetail, undefined);
    const eds = server.requestsFor(EDS_TYPE_URL);
    assert.deepEqual([...(eds[0]?.subscribe ?? [])].sort(), ['d1', 'd2']);
    assert.equal(eds[0]?.responseNonce, '', 'a subscription change carries no nonce');
  });

  it('adds, modifies and removes', async () => {
    server.upsert(CDS_TYPE_URL, [edsCluster('d3')]);
    server.upsert(EDS_TYPE_URL, [cla('d3', [['10.3.0.3', 3]])]);
    server.push(CDS_TYPE_URL);
    await until(() => cm.get('d3') !== undefined, 5000, 'd3 added');
    assert.deepEqual(hostKeys(cm, 'd3'), ['10.3.0.3:3']);

    const n = events.length;
    server.upsert(EDS_TYPE_URL, [cla('d1', [['10.3.0.9', 1]])]);
    server.push(EDS_TYPE_URL);
    await until(() => hostKeys(cm, 'd1')[0] === '10.3.0.9:1', 5000, 'd1 modified');
    assert.ok(events.slice(n).some((e) => e.type === 'membership' && e.cluster.name === 'd1'));

    server.remove(CDS_TYPE_URL, ['d2']);
    server.push(CDS_TYPE_URL);
    await until(() => events.some((e) => e.type === 'removed' && e.name === 'd2'), 5000, 'd2 removed');
    await server.waitFor(() => server.requestsFor(EDS_TYPE_URL).some((r) => r.unsubscribe.includes('d2')), 5000, 'EDS unsubscribe');
  });

  it('NACKs a type mismatch with error_detail and applies nothing', async () => {
    const wrong = server.encodeAny(EDS_TYPE_URL, cla('d1', [['10.9.9.9', 1]]));
    const nonce = server.sendRawDelta({ type_url: CDS_TYPE_URL, resources: [{ name: 'x', version: '9', resource: wrong }] });
    await server.waitFor(() => server.replyTo(nonce) !== undefined, 5000, 'NACK');
    assert.match(server.replyTo(nonce)?.errorDetail?.message ?? '', /does not match the response type/);
    assert.equal(cm.get('x'), undefined);
  });

  it('reconnects with initial_resource_versions', async () => {
    const before = server.requests.length;
    server.killStreams();
    await server.waitFor(() => server.requests.slice(before).filter((r) => r.responseNonce === '').length >= 2, 10_000, 'resubscribe');
    const [cds, eds] = server.requests.slice(before);
    assert.equal(cds?.typeUrl, CDS_TYPE_URL);
    assert.deepEqual(cds?.subscribe, ['*']);
    assert.deepEqual(Object.keys(cds?.initialResourceVersions ?? {}).sort(), ['d1', 'd3']);
    assert.equal(eds?.typeUrl, EDS_TYPE_URL);
    assert.deepEqual([...(eds?.subscribe ?? [])].sort(), ['d1', 'd3']);
    assert.ok(eds?.initialResourceVersions['d1']);
  });
});
