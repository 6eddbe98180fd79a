import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ClusterManager, type ClusterEvent } from '../../src/upstream/cluster-manager';
import { parseBootstrap } from '../../src/config/bootstrap';
import { until } from '../support/xds-fixtures';

const managers: ClusterManager[] = [];
after(() => managers.forEach((m) => m.close()));

describe('ClusterManager with bootstrap clusters', () => {
  it('resolves a STRICT_DNS cluster named localhost to 127.0.0.1', async () => {
    const b = parseBootstrap(`
static_resources:
  clusters:
  - name: redis-local
    type: STRICT_DNS
    dns_refresh_rate: 60s
    load_assignment:
      cluster_name: redis-local
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: localhost, port_value: 6379 } } } }] }]
`, 'yaml');
    const cm = new ClusterManager();
    managers.push(cm);
    const events: ClusterEvent[] = [];
    cm.onEvent((e) => events.push(e));
    assert.equal(cm.addOrUpdateCluster(b.staticClusters[0]!), 'warming');
    await until(() => cm.get('redis-local') !== undefined, 5000, 'DNS warm-up');
    const c = cm.get('redis-local')!;
    assert.deepEqual(c.hosts.map((h) => h.key), ['127.0.0.1:6379']);
    assert.equal(c.hosts[0]?.hostname, 'localhost');
    assert.equal(events[0]?.type, 'added');
    assert.equal(cm.addOrUpdateCluster(b.staticClusters[0]!), 'unchanged', 'same hash is a no-op');
  });

  it('keeps an EDS cluster warming until its assignment arrives', () => {
    const b = parseBootstrap(`
static_resources:
  clusters:
  - { name: e1, type: EDS, eds_cluster_config: { eds_config: { ads: {} }, service_name: svc } }
`, 'yaml');
    const cm = new ClusterManager();
    managers.push(cm);
    assert.equal(cm.addOrUpdateCluster(b.staticClusters[0]!), 'warming');
    assert.deepEqual(cm.edsServiceNames(), ['svc']);
    assert.equal(cm.get('e1'), undefined);
    cm.setAssignment('svc', [{ address: '10.0.0.1', port: 1, health: 'HEALTHY', weight: 1, priority: 0, hostname: '', locality: { region: '', zone: '', subZone: '' } }]);
    assert.deepEqual(cm.get('e1')?.hosts.map((h) => h.key), ['10.0.0.1:1']);
  });
});
