/**
 * GET /config_dump: envoy.admin.v3.ConfigDump in proto3 JSON, configs in Envoy's order (bootstrap, clusters,
 * endpoints with ?include_eds, listeners). `?resource=<repeated field>` returns that list's entries, each with its
 * own `@type`, as Envoy does; `?name_regex=` keeps the entries whose resource name matches. Every value goes
 * through redactJson() before it leaves.
 */
import type { LiveCluster } from '../upstream/cluster-manager';
import { CDS_TYPE_URL, EDS_TYPE_URL } from '../xds/protos';
import { ECDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL } from '../xds/type-urls';
import type { ClusterConfig, Host } from '../upstream/types';
import type { TypeStatus, XdsStatus } from '../xds/status';
import { redactJson } from './redact';
import type { AdminJson, AdminJsonObject, DynamicResourceView, ListenerSource } from './sources';

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';
// The resource type URLs are the xDS client's; only the listener type is the admin's own.
const CLUSTER_TYPE_URL = CDS_TYPE_URL;
export const LISTENER_TYPE_URL = LDS_TYPE_URL;
const ROUTE_CONFIG_TYPE_URL = RDS_TYPE_URL;
const TYPED_EXTENSION_CONFIG_TYPE_URL = ECDS_TYPE_URL;
const HCM_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** Non-repeated fields of the dump messages: `?resource=` cannot select them (Envoy answers 400). */
const SCALAR_FIELDS = new Set(['bootstrap', 'last_updated', 'version_info']);

export interface ConfigDumpInputs {
  readonly bootstrap: AdminJsonObject;
  readonly startTime: Date;
  readonly active: readonly LiveCluster[];
  readonly warming: readonly ClusterConfig[];
  readonly xds: XdsStatus | undefined;
  /** When a cluster's current definition was applied, as the admin saw it (fallback for last_updated). */
  readonly configUpdated: (name: string) => Date | undefined;
  /** Dynamic listeners, route configurations and ECDS configs; absent: static listeners only. */
  readonly listeners?: ListenerSource | undefined;
}

export interface ConfigDumpQuery {
  readonly includeEds: boolean;
  readonly resource: string | undefined;
  readonly nameRegex: RegExp | undefined;
}

export type ConfigDumpResult =
  | { readonly ok: true; readonly body: AdminJsonObject }
  | { readonly ok: false; readonly status: 400 | 404; readonly message: string };

/** A repeated field of a dump section: its entries' @type and how to name an entry (for name_regex). */
interface RepeatedField {
  readonly entryType: string;
  readonly entries: readonly AdminJsonObject[];
  readonly nameOf: (entry: AdminJsonObject) => string;
}

interface Section {
  readonly type: string;
  readonly scalars: AdminJsonObject;
  readonly repeated: Readonly<Record<string, RepeatedField>>;
}

function timestamp(d: Date): string {
  return d.toISOString();
}

function clusterName(entry: AdminJsonObject): string {
  const c = entry['cluster'];
  return c && typeof c === 'object' && !Array.isArray(c) ? String((c as AdminJsonObject)['name'] ?? '') : '';
}

function claName(entry: AdminJsonObject): string {
  const c = entry['endpoint_config'];
  return c && typeof c === 'object' && !Array.isArray(c) ? String((c as AdminJsonObject)['cluster_name'] ?? '') : '';
}

function listenerName(entry: AdminJsonObject): string {
  const l = entry['listener'];
  return l && typeof l === 'object' && !Array.isArray(l) ? String((l as AdminJsonObject)['name'] ?? '') : '';
}

function typeStatus(xds: XdsStatus | undefined, typeUrl: string): TypeStatus | undefined {
  return xds?.types.find((t) => t.typeUrl === typeUrl);
}

function withType(source: Readonly<Record<string, unknown>>, typeUrl: string): AdminJsonObject {
  const { ['@type']: _ignored, ...rest } = source;
  return { '@type': typeUrl, ...(rest as AdminJsonObject) };
}

function clustersSection(inputs: ConfigDumpInputs): Section {
  const cds = typeStatus(inputs.xds, CLUSTER_TYPE_URL);
  const resources = new Map((cds?.resources ?? []).map((r) => [r.name, r]));
  const lastUpdated = (name: string): Date => resources.get(name)?.lastUpdated ?? inputs.configUpdated(name) ?? inputs.startTime;
  const statics: AdminJsonObject[] = [];
  const dynamic: AdminJsonObject[] = [];
  const warming: AdminJsonObject[] = [];
  const dynamicEntry = (config: ClusterConfig): AdminJsonObject => {
    const entry: Record<string, AdminJson> = {};
    if (config.versionInfo !== '') entry['version_info'] = config.versionInfo;
    entry['cluster'] = withType(config.source, CLUSTER_TYPE_URL);
    entry['last_updated'] = timestamp(lastUpdated(config.name));
    // envoy.admin.v3.ClientResourceStatus, as the xDS client recorded it (CSDS shape).
    const status = resources.get(config.name)?.status;
    if (status) entry['client_status'] = status;
    const error = resources.get(config.name)?.error;
    if (error) {
      entry['error_state'] = {
        last_update_attempt: timestamp(error.lastUpdateAttempt),
        details: error.details,
        ...(error.versionInfo !== '' ? { version_info: error.versionInfo } : {}),
      };
    }
    return entry;
  };
  for (const cluster of inputs.active) {
    if (!cluster.config.addedViaApi) {
      statics.push({ cluster: withType(cluster.config.source, CLUSTER_TYPE_URL), last_updated: timestamp(inputs.configUpdated(cluster.name) ?? inputs.startTime) });
    } else {
      dynamic.push(dynamicEntry(cluster.config));
    }
  }
  for (const config of inputs.warming) if (config.addedViaApi) warming.push(dynamicEntry(config));
  const scalars: Record<string, AdminJson> = {};
  if (cds && cds.versionInfo !== '') scalars['version_info'] = cds.versionInfo;
  return {
    type: `${ADMIN}ClustersConfigDump`,
    scalars,
    repeated: {
      static_clusters: { entryType: `${ADMIN}ClustersConfigDump.StaticCluster`, entries: statics, nameOf: clusterName },
      dynamic_active_clusters: { entryType: `${ADMIN}ClustersConfigDump.DynamicCluster`, entries: dynamic, nameOf: clusterName },
      dynamic_warming_clusters: { entryType: `${ADMIN}ClustersConfigDump.DynamicCluster`, entries: warming, nameOf: clusterName },
    },
  };
}

/** A ClusterLoadAssignment rebuilt from the cluster's current hosts, grouped by (priority, locality) as Envoy does. */
export function loadAssignmentJson(cluster: LiveCluster): AdminJsonObject {
  const groups = new Map<string, { priority: number; locality: Host['locality']; hosts: Host[] }>();
  for (const h of cluster.hosts) {
    const key = JSON.stringify([h.priority, h.locality.region, h.locality.zone, h.locality.subZone]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { priority: h.priority, locality: h.locality, hosts: [] }));
    g.hosts.push(h);
  }
  const endpoints: AdminJson[] = [...groups.values()]
    .sort((a, b) => a.priority - b.priority)
    .map((g) => {
      const locality: Record<string, AdminJson> = {};
      if (g.locality.region) locality['region'] = g.locality.region;
      if (g.locality.zone) locality['zone'] = g.locality.zone;
      if (g.locality.subZone) locality['sub_zone'] = g.locality.subZone;
      const out: Record<string, AdminJson> = {};
      if (Object.keys(locality).length > 0) out['locality'] = locality;
      out['lb_endpoints'] = g.hosts.map((h) => {
        const endpoint: Record<string, AdminJson> = { address: { socket_address: { address: h.address, port_value: h.port } } };
        if (h.hostname) endpoint['hostname'] = h.hostname;
        const lb: Record<string, AdminJson> = { endpoint };
        lb['health_status'] = h.health;
        lb['load_balancing_weight'] = h.weight;
        return lb;
      });
      if (g.priority !== 0) out['priority'] = g.priority;
      return out;
    });
  const name = cluster.config.type === 'EDS' ? cluster.config.edsServiceName : cluster.name;
  return { '@type': EDS_TYPE_URL, cluster_name: name, endpoints, policy: { overprovisioning_factor: 140 } };
}

function endpointsSection(inputs: ConfigDumpInputs): Section {
  const eds = typeStatus(inputs.xds, EDS_TYPE_URL);
  const resources = new Map((eds?.resources ?? []).map((r) => [r.name, r]));
  const statics: AdminJsonObject[] = [];
  const dynamic: AdminJsonObject[] = [];
  for (const cluster of inputs.active) {
    const endpointConfig = loadAssignmentJson(cluster);
    const lastUpdated = timestamp(cluster.membershipUpdated);
    if (!cluster.config.addedViaApi) {
      statics.push({ endpoint_config: endpointConfig, last_updated: lastUpdated });
    } else {
      const entry: Record<string, AdminJson> = {};
      const version = cluster.config.type === 'EDS' ? (resources.get(cluster.config.edsServiceName)?.version ?? eds?.versionInfo ?? '') : cluster.config.versionInfo;
      if (version !== '') entry['version_info'] = version;
      entry['endpoint_config'] = endpointConfig;
      entry['last_updated'] = lastUpdated;
      dynamic.push(entry);
    }
  }
  return {
    type: `${ADMIN}EndpointsConfigDump`,
    scalars: {},
    repeated: {
      static_endpoint_configs: { entryType: `${ADMIN}EndpointsConfigDump.StaticEndpointConfig`, entries: statics, nameOf: claName },
      dynamic_endpoint_configs: { entryType: `${ADMIN}EndpointsConfigDump.DynamicEndpointConfig`, entries: dynamic, nameOf: claName },
    },
  };
}

function staticListenerJson(inputs: ConfigDumpInputs): AdminJsonObject[] {
  const statics = inputs.bootstrap['static_resources'];
  const list = statics && typeof statics === 'object' && !Array.isArray(statics) ? (statics as AdminJsonObject)['listeners'] : undefined;
  return (Array.isArray(list) ? (list as AdminJson[]) : []).filter((l): l is AdminJsonObject => !!l && typeof l === 'object' && !Array.isArray(l));
}

/** The client's view of one named resource: client_status, and error_state when its last update was rejected. */
function clientState(xds: XdsStatus | undefined, typeUrl: string, name: string): Record<string, AdminJson> {
  const r = typeStatus(xds, typeUrl)?.resources.find((x) => x.name === name);
  const out: Record<string, AdminJson> = {};
  if (r?.status) out['client_status'] = r.status;
  return out;
}

function updateFailure(error: { readonly details: string; readonly version: string; readonly at: Date }, failed: Readonly<Record<string, unknown>> | undefined, typeUrl: string): AdminJsonObject {
  return {
    ...(failed ? { failed_configuration: withType(failed, typeUrl) } : {}),
    last_update_attempt: timestamp(error.at),
    details: error.details,
    ...(error.version !== '' ? { version_info: error.version } : {}),
  };
}

/** The client's rejection of a named resource (RDS/ECDS keep their errors in the client's status). */
function clientError(xds: XdsStatus | undefined, typeUrl: string, name: string): AdminJsonObject | undefined {
  const e = typeStatus(xds, typeUrl)?.resources.find((x) => x.name === name)?.error;
  return e ? updateFailure({ details: e.details, version: e.versionInfo, at: e.lastUpdateAttempt }, undefined, typeUrl) : undefined;
}

function versionState(v: DynamicResourceView, typeUrl: string): AdminJsonObject {
  return { ...(v.version !== '' ? { version_info: v.version } : {}), listener: withType(v.resource, typeUrl), last_updated: timestamp(v.lastUpdated) };
}

function listenersSection(inputs: ConfigDumpInputs): Section {
  const entries: AdminJsonObject[] = staticListenerJson(inputs).map((l) => ({
    listener: withType(l, LISTENER_TYPE_URL),
    last_updated: timestamp(inputs.startTime),
  }));
  const dynamic: AdminJsonObject[] = (inputs.listeners?.dynamicListeners() ?? []).map((d) => {
    const out: Record<string, AdminJson> = { name: d.name };
    if (d.active) out['active_state'] = versionState(d.active, LISTENER_TYPE_URL);
    if (d.warming) out['warming_state'] = versionState(d.warming, LISTENER_TYPE_URL);
    if (d.draining) out['draining_state'] = versionState(d.draining, LISTENER_TYPE_URL);
    if (d.error) out['error_state'] = updateFailure(d.error, d.error.resource, LISTENER_TYPE_URL);
    Object.assign(out, clientState(inputs.xds, LISTENER_TYPE_URL, d.name));
    return out;
  });
  const lds = typeStatus(inputs.xds, LISTENER_TYPE_URL);
  return {
    type: `${ADMIN}ListenersConfigDump`,
    scalars: lds && lds.versionInfo !== '' ? { version_info: lds.versionInfo } : {},
    repeated: {
      static_listeners: { entryType: `${ADMIN}ListenersConfigDump.StaticListener`, entries, nameOf: listenerName },
      dynamic_listeners: { entryType: `${ADMIN}ListenersConfigDump.DynamicListener`, entries: dynamic, nameOf: (e) => String(e['name'] ?? '') },
    },
  };
}

/** Static route configurations: the inline route_config of each static listener's HCMs (Envoy lists them). */
function staticRouteConfigs(inputs: ConfigDumpInputs): AdminJsonObject[] {
  const out: AdminJsonObject[] = [];
  for (const l of staticListenerJson(inputs)) {
    const chains = [...((l['filter_chains'] as AdminJson[] | undefined) ?? []), ...(l['default_filter_chain'] ? [l['default_filter_chain']] : [])];
    for (const c of chains) {
      for (const f of (((c as AdminJsonObject)['filters'] as AdminJson[] | undefined) ?? [])) {
        const tc = (f as AdminJsonObject)['typed_config'] as AdminJsonObject | undefined;
        const rc = tc && tc['@type'] === HCM_TYPE_URL ? (tc['route_config'] as AdminJsonObject | undefined) : undefined;
        if (rc) out.push({ route_config: withType(rc, ROUTE_CONFIG_TYPE_URL), last_updated: timestamp(inputs.startTime) });
      }
    }
  }
  return out;
}

function routesSection(inputs: ConfigDumpInputs): Section {
  const dynamic: AdminJsonObject[] = (inputs.listeners?.routeConfigs() ?? []).map((r) => {
    const error = clientError(inputs.xds, ROUTE_CONFIG_TYPE_URL, r.name);
    return {
      ...(r.version !== '' ? { version_info: r.version } : {}),
      route_config: withType(r.resource, ROUTE_CONFIG_TYPE_URL),
      last_updated: timestamp(r.lastUpdated),
      ...clientState(inputs.xds, ROUTE_CONFIG_TYPE_URL, r.name),
      ...(error ? { error_state: error } : {}),
    };
  });
  const routeName = (e: AdminJsonObject): string => String(((e['route_config'] as AdminJsonObject | undefined) ?? {})['name'] ?? '');
  return {
    type: `${ADMIN}RoutesConfigDump`,
    scalars: {},
    repeated: {
      static_route_configs: { entryType: `${ADMIN}RoutesConfigDump.StaticRouteConfig`, entries: staticRouteConfigs(inputs), nameOf: routeName },
      dynamic_route_configs: { entryType: `${ADMIN}RoutesConfigDump.DynamicRouteConfig`, entries: dynamic, nameOf: routeName },
    },
  };
}

function ecdsSection(inputs: ConfigDumpInputs): Section {
  const entries: AdminJsonObject[] = (inputs.listeners?.extensionConfigs() ?? []).map((r) => {
    const error = clientError(inputs.xds, TYPED_EXTENSION_CONFIG_TYPE_URL, r.name);
    return {
      ...(r.version !== '' ? { version_info: r.version } : {}),
      ecds_filter: withType(r.resource, TYPED_EXTENSION_CONFIG_TYPE_URL),
      last_updated: timestamp(r.lastUpdated),
      ...clientState(inputs.xds, TYPED_EXTENSION_CONFIG_TYPE_URL, r.name),
      ...(error ? { error_state: error } : {}),
    };
  });
  const name = (e: AdminJsonObject): string => String(((e['ecds_filter'] as AdminJsonObject | undefined) ?? {})['name'] ?? '');
  return {
    type: `${ADMIN}EcdsConfigDump`,
    scalars: {},
    repeated: { ecds_filters: { entryType: `${ADMIN}EcdsConfigDump.EcdsFilterConfig`, entries, nameOf: name } },
  };
}

function renderSection(s: Section, nameRegex: RegExp | undefined): AdminJsonObject {
  const out: Record<string, AdminJson> = { '@type': s.type, ...s.scalars };
  for (const [field, r] of Object.entries(s.repeated)) {
    const entries = nameRegex ? r.entries.filter((e) => nameRegex.test(r.nameOf(e))) : r.entries;
    if (entries.length > 0) out[field] = entries; // proto3 JSON omits empty repeated fields
  }
  return out;
}

export function configDump(inputs: ConfigDumpInputs, query: ConfigDumpQuery): ConfigDumpResult {
  const bootstrap: Section = {
    type: `${ADMIN}BootstrapConfigDump`,
    scalars: { bootstrap: inputs.bootstrap, last_updated: timestamp(inputs.startTime) },
    repeated: {},
  };
  // Envoy's order: bootstrap, clusters, ecds, endpoints, listeners, (scoped routes), routes, (secrets).
  const sections = [bootstrap, clustersSection(inputs)];
  const ecds = ecdsSection(inputs);
  if (ecds.repeated['ecds_filters']!.entries.length > 0) sections.push(ecds);
  if (query.includeEds) sections.push(endpointsSection(inputs));
  sections.push(listenersSection(inputs));
  const routes = routesSection(inputs);
  if (Object.values(routes.repeated).some((r) => r.entries.length > 0)) sections.push(routes);

  if (query.resource !== undefined) {
    for (const s of sections) {
      const r = s.repeated[query.resource];
      if (r) {
        const entries = query.nameRegex ? r.entries.filter((e) => query.nameRegex!.test(r.nameOf(e))) : r.entries;
        return { ok: true, body: redactJson({ configs: entries.map((e) => ({ '@type': r.entryType, ...e })) }) };
      }
      if (SCALAR_FIELDS.has(query.resource)) {
        return { ok: false, status: 400, message: `${query.resource} is not a repeated field. Use ?mask=${query.resource} to get only this field` };
      }
    }
    return { ok: false, status: 404, message: `${query.resource} not found in config dump` };
  }
  return { ok: true, body: redactJson({ configs: sections.map((s) => renderSection(s, query.nameRegex)) }) };
}
