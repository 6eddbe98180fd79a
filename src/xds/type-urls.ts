/**
 * The xDS type URLs this client subscribes to, in one place (the managers that consume LDS/RDS/ECDS import them
 * from here). Only v3 exists.
 */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';
export const CDS_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const EDS_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
export const LDS_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const RDS_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
/** ECDS: `envoy.config.core.v3.TypedExtensionConfig` (an HTTP filter's `config_discovery`). */
export const ECDS_TYPE_URL = 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig';
/** The `envoy.service.discovery.v3.Resource` wrapper (TTL, resource-in-SotW). */
export const RESOURCE_TYPE_URL = 'type.googleapis.com/envoy.service.discovery.v3.Resource';
