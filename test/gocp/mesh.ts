import { readFileSync } from 'node:fs';
import { pluginPath } from '../support/plugins';
import type { Json } from './go-control-plane';

/**
 * xDS resources shaped as istiod and Higress's controller emit them, derived from the real dumps in
 * ../shared/vectors (an istiod EDS cluster, Higress's listener/RDS/ECDS layout), for the go-control-plane
 * snapshots. What those dumps carry that belongs to Istio's own proxy build (istio.metadata_exchange, SDS mTLS
 * transport_socket_matches to sidecar-injected peers) is dropped here, as it would be for workloads that are not
 * in the mesh's mTLS; everything else is kept as it came.
 */

export const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const ECDS = 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig';
export const WASM = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';

const VECTORS = '/work/shared/vectors';

function vector(name: string): { configs: Json[] } {
  return JSON.parse(readFileSync(`${VECTORS}/${name}`, 'utf8')) as { configs: Json[] };
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** istiod's EDS cluster (`outbound|9080|v1|productpage...` in the istioctl vector) renamed to `name`. */
export function istioEdsCluster(name: string, extra: Json = {}): Json {
  const dump = vector('istio_describe_http_config.json').configs.find((c) => String(c['@type']).endsWith('ClustersConfigDump'))!;
  const cluster = clone((dump['dynamic_active_clusters'] as Json[])[0]!['cluster'] as Json);
  delete cluster['filters'];
  delete cluster['transport_socket_matches'];
  const [, port, , host] = name.split('|');
  cluster['name'] = name;
  cluster['eds_cluster_config']['service_name'] = name;
  const istio = cluster['metadata']['filter_metadata']['istio'];
  istio['default_original_port'] = Number(port);
  istio['services'] = [{ host, namespace: host!.split('.')[1], name: host!.split('.')[0] }];
  delete istio['subset'];
  delete istio['config'];
  return { ...cluster, ...extra };
}

/** A ClusterLoadAssignment as istiod sends it: one locality, weighted HEALTHY endpoints with istio metadata. */
export function istioCla(name: string, ports: readonly number[], ns = 'ns'): Json {
  return {
    '@type': EDS,
    cluster_name: name,
    endpoints: [{
      locality: { region: 'us-central1', zone: 'us-central1-a' },
      lb_endpoints: ports.map((port, i) => ({
        endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        health_status: 'HEALTHY',
        metadata: { filter_metadata: { istio: { workload: `redis-${i};${ns};redis;;Kubernetes` } } },
        load_balancing_weight: 1,
      })),
      load_balancing_weight: ports.length,
    }],
  };
}

/**
 * An ECDS Wasm filter config as Higress's controller sends it (`<namespace>.<plugin>`, v8, code.local, the
 * configuration as a StringValue of JSON, fail_open), here with the project's plugin and its configuration.
 */
export function higressWasmConfig(name: string, plugin: string, rootId: string, configuration: string): Json {
  return {
    '@type': ECDS,
    name,
    typed_config: {
      '@type': WASM,
      config: {
        name,
        root_id: rootId,
        vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath(plugin) } } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: configuration },
        fail_open: false,
      },
    },
  };
}

/**
 * A listener in Higress's layout (`0.0.0.0_<port>`, OUTBOUND, an HCM with RDS over ADS and a Wasm filter from
 * ECDS), bound to 127.0.0.1 and reduced to the filters this data plane runs.
 */
export function higressListener(port: number, routeName: string, ecdsFilters: readonly string[]): Json {
  const ads = { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' };
  return {
    '@type': LDS,
    name: `0.0.0.0_${port}`,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    traffic_direction: 'OUTBOUND',
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: `outbound_0.0.0.0_${port}`,
          rds: { config_source: ads, route_config_name: routeName },
          http_filters: [
            ...ecdsFilters.map((name) => ({ name, config_discovery: { config_source: ads, type_urls: [WASM] } })),
            { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
          ],
        },
      }],
    }],
  };
}

/** A RouteConfiguration in Higress's shape (`*:<port>` virtual host, named routes with istio metadata). */
export function higressRoutes(name: string, port: number, cluster: string): Json {
  return {
    '@type': RDS,
    name,
    virtual_hosts: [{
      name: `*:${port}`,
      domains: ['*'],
      routes: [{
        name: 'default/default',
        match: { prefix: '/', case_sensitive: true },
        route: { cluster, timeout: '0s' },
        metadata: { filter_metadata: { istio: { config: '/apis/networking.istio.io/v1alpha3/namespaces/ns/virtual-service/default' } } },
      }],
    }],
  };
}

/** An Istio sidecar's node (pilot-agent's bootstrap): id `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`. */
export function istioNode(pod = 'app-7d4b9c-x2k8p', ns = 'ns', ip = '10.1.2.3'): Json {
  return {
    id: `sidecar~${ip}~${pod}.${ns}~${ns}.svc.cluster.local`,
    cluster: `app.${ns}`,
    metadata: {
      NAME: pod,
      NAMESPACE: ns,
      INSTANCE_IPS: ip,
      CLUSTER_ID: 'Kubernetes',
      ISTIO_VERSION: '1.24.0',
      SERVICE_ACCOUNT: 'app',
      WORKLOAD_NAME: 'app',
      LABELS: { app: 'app', 'service.istio.io/canonical-name': 'app' },
    },
  };
}

/** The bootstrap part an Istio sidecar has: ADS over the static `xds-grpc` cluster, CDS and LDS over ADS. */
export function adsBootstrap(xdsPort: number, options: { delta?: boolean; lds?: boolean; node?: Json } = {}): Json {
  const ads = { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' };
  return {
    node: options.node ?? istioNode(),
    static_resources: {
      clusters: [{
        name: 'xds-grpc',
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: xdsPort } } } }] }] },
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
      }],
    },
    dynamic_resources: {
      ads_config: {
        api_type: options.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      ...(options.lds ? { lds_config: ads } : {}),
    },
  };
}
