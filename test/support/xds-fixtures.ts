import { ClusterManager, type ClusterEvent } from '../../src/upstream/cluster-manager';
import { until as pollUntil } from './until';

/** Proto3 JSON builders for test resources. */

export function edsCluster(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    type: 'EDS',
    connect_timeout: '10s',
    lb_policy: 'LEAST_REQUEST',
    eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' }, service_name: name },
    ...extra,
  };
}

export function staticCluster(name: string, port: number, address = '127.0.0.1'): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }] },
  };
}

export function cla(name: string, hosts: readonly (readonly [string, number])[], health = 'HEALTHY'): Record<string, unknown> {
  return {
    cluster_name: name,
    endpoints: [
      {
        locality: { region: 'r1', zone: 'z1' },
        lb_endpoints: hosts.map(([address, port]) => ({
          endpoint: { address: { socket_address: { address, port_value: port } } },
          health_status: health,
          load_balancing_weight: 1,
        })),
      },
    ],
  };
}

/** A ClusterManager that records its events. */
export function recordingManager(): { cm: ClusterManager; events: ClusterEvent[] } {
  const cm = new ClusterManager({ resolver: async () => ['127.0.0.1'] });
  const events: ClusterEvent[] = [];
  cm.onEvent((e) => events.push(e));
  return { cm, events };
}

/** support/until with the xDS tests' defaults: a 10 s limit, polled every 5 ms. Never a fixed sleep. */
export function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  return pollUntil(predicate, timeoutMs, what, 5);
}

export function hostKeys(cm: ClusterManager, name: string): string[] {
  return [...(cm.get(name)?.hosts ?? [])].map((h) => h.key).sort();
}
