import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdsClient } from '../../src/xds/ads-client';
import { EDS_TYPE_URL } from '../../src/xds/protos';
import type { AnyMessage } from '../../src/xds/protos';
import type { ClusterManager } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager, until } from '../support/xds-fixtures';

/**
 * SotW EDS responses are read lazily: unchanged CLAs are recognised by position or by name without decoding.
 * These check that the shortcut keeps the protocol's outcomes when the order changes or names repeat.
 */
describe('SotW EDS: unchanged CLAs are skipped, whatever the order', () => {
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  const names = ['e0', 'e1', 'e2', 'e3'];
  let anys: AnyMessage[];

  before(async () => {
    server = await XdsTestServer.start();
    server.setClusters(names.map((n) => edsCluster(n)));
    server.setEndpoints(names.map((n, i) => cla(n, [['10.9.0.' + (i + 1), 1]])));
    ({ cm } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'sotw-eds' }, sink: cm, initialFetchTimeoutMs: 0 });
    client.start();
    await client.initialized;
    anys = names.map((n, i) => server.encodeAny(EDS_TYPE_URL, cla(n, [['10.9.0.' + (i + 1), 1]])));
  });

  after(async () => {
    await client.close();
    cm.close();
    await server.close();
  });

  async function send(resources: AnyMessage[], version: string): Promise<{ nack: string | undefined }> {
    const nonce = server.sendRaw({ type_url: EDS_TYPE_URL, version_info: version, resources });
    await server.waitFor(() => server.replyTo(nonce) !== undefined, 5000, `reply to ${version}`);
    return { nack: server.replyTo(nonce)?.errorDetail?.message };
  }

  it('applies a change in a reordered response and keeps the rest', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e2', [['10.9.1.3', 1]]));
    const success0 = client.counters().eds['e0']?.update_success ?? 0;
    const r = await send([anys[3]!, changed, anys[1]!, anys[0]!], 'v-reorder');
    assert.equal(r.nack, undefined);
    assert.deepEqual(hostKeys(cm, 'e2'), ['10.9.1.3:1']);
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1']);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.0.4:1']);
    assert.equal(client.counters().eds['e0']?.update_success, success0 + 1, 'an unchanged CLA still counts as an update, as in Envoy');
    anys[2] = changed;
  });

  it('rejects an unchanged CLA sent twice, and the changed one beside it still applies', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e1', [['10.9.2.2', 1]]));
    const r = await send([anys[0]!, changed, anys[2]!, anys[3]!, anys[0]!], 'v-dup');
    assert.match(r.nack ?? '', /more than one ClusterLoadAssignment for 'e0'/);
    assert.equal(client.versionInfo(EDS_TYPE_URL), 'v-reorder');
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1']);
    assert.deepEqual(hostKeys(cm, 'e1'), ['10.9.2.2:1'], "valid CLAs are applied (Envoy's partial acceptance)");
    anys[1] = changed;
  });

  it('a CLA failing validation rejects the whole response: a changed sibling is not applied either', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e0', [['10.9.7.7', 7]]));
    const bad = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 70000]]));
    const rejected0 = client.counters().eds['e0']?.update_rejected ?? 0;
    const r = await send([changed, anys[1]!, anys[2]!, bad], 'v-bad-sibling');
    assert.match(r.nack ?? '', /ClusterLoadAssignment 'e3'/);
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1'], 'the valid change beside an invalid CLA is not applied (Envoy decodes the response first)');
    assert.equal(client.counters().eds['e0']?.update_rejected, rejected0 + 1);
  });

  it('re-applies after a NACK: the same bytes again at the same place are not mistaken for accepted ones', async () => {
    const bad = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 70000]]));
    const r1 = await send([anys[0]!, anys[1]!, anys[2]!, bad], 'v-bad');
    assert.match(r1.nack ?? '', /ClusterLoadAssignment 'e3'/);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.0.4:1']);
    const good = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 4]]));
    const r2 = await send([anys[0]!, anys[1]!, anys[2]!, good], 'v-good');
    assert.equal(r2.nack, undefined);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.3.4:4']);
    await until(() => client.versionInfo(EDS_TYPE_URL) === 'v-good', 1000, 'version');
  });
});
