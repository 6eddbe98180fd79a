import { createHash } from 'node:crypto';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DNS_REFRESH_RATE_MS,
  type ClusterConfig,
  type DiscoveryType,
  type LbPolicy,
} from '../../upstream/types';
import { ConfigError } from '../../common/errors';
import { DEFAULT_UPSTREAM_PROTOCOL, upstreamProtocol, type UpstreamProtocol } from '../../http/protocol-options';
import { transportSocket, UPSTREAM_TLS_TYPE, upstreamTlsContext, type UpstreamTls } from '../../tls/tls-context';
import { toProtoJson, type JsonObject, type ProtoObject } from '../proto-json';
import { CDS_TYPE_URL, loadEnvoyProtos, type EnvoyProtos } from '../protos';
import type { ProtoValidator } from '../validate';
import { claToHosts } from './endpoint';
import type { Decoded, ResourceType } from './types';

const DISCOVERY_TYPES: readonly DiscoveryType[] = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];
const LB_POLICIES: Readonly<Record<number, LbPolicy>> = {
  0: 'ROUND_ROBIN',
  1: 'LEAST_REQUEST',
  2: 'RING_HASH',
  3: 'RANDOM',
  5: 'MAGLEV',
  6: 'CLUSTER_PROVIDED',
  7: 'LOAD_BALANCING_POLICY_CONFIG',
};

export interface ClusterMeta {
  /** The version_info of the response (or '' for bootstrap clusters). */
  readonly versionInfo: string;
  /** false for bootstrap static_resources clusters. */
  readonly addedViaApi: boolean;
  /** Bytes the hash is taken over; defaults to the message re-encoded. Pass the raw Any value from the wire. */
  readonly raw?: Uint8Array;
}

function durationMs(d: unknown, fallback: number): number {
  if (!d || typeof d !== 'object') return fallback;
  const o = d as { seconds?: unknown; nanos?: unknown };
  return Number(String(o.seconds ?? 0)) * 1000 + Math.round(Number(o.nanos ?? 0) / 1e6);
}

function has(msg: ProtoObject, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(msg, field) && msg[field] !== null && msg[field] !== undefined;
}

/** Stable identity of a cluster config: sha256 over its serialized bytes. */
export function hashBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Envoy's checks beyond PGV (cluster_factory_impl.cc, eds.cc, logical_dns_cluster.cc): EDS needs an eds_config
 * this client can serve (ADS), LOGICAL_DNS exactly one endpoint, STATIC numeric addresses.
 */
const PROTOCOL_FIELDS = ['transport_socket', 'transport_socket_matches', 'typed_extension_protocol_options', 'http2_protocol_options', 'http_protocol_options'];

interface ProtocolConfig {
  readonly upstreamProtocol: UpstreamProtocol;
  readonly tls: UpstreamTls | undefined;
}

/**
 * The upstream protocol and TLS of a cluster, read from its proto3 JSON form (Any fields decoded). A transport
 * socket other than TLS or raw_buffer, transport_socket_matches with anything but raw_buffer (their match
 * criteria are not implemented), dynamic SDS, and every TLS field not implemented are refused with their path:
 * connecting in plaintext where encryption was configured would be the worst kind of silent failure.
 */
function protocolConfig(protos: EnvoyProtos, msg: ProtoObject): { ok: true; value: ProtocolConfig } | { ok: false; errors: string[] } {
  if (!PROTOCOL_FIELDS.some((f) => has(msg, f) && !(Array.isArray(msg[f]) && (msg[f] as unknown[]).length === 0) && !(f === 'typed_extension_protocol_options' && Object.keys(msg[f] as object).length === 0))) {
    return { ok: true, value: { upstreamProtocol: DEFAULT_UPSTREAM_PROTOCOL, tls: undefined } };
  }
  try {
    const json = toProtoJson(protos, protos.Cluster, msg, { unknownAny: 'opaque' });
    ((json['transport_socket_matches'] as JsonObject[] | undefined) ?? []).forEach((m, i) => {
      if (transportSocket(m['transport_socket'], `transport_socket_matches[${i}].transport_socket`, UPSTREAM_TLS_TYPE) !== undefined) {
        throw new ConfigError('transport_socket_matches are not supported (only raw_buffer sockets there)', `transport_socket_matches[${i}]`);
      }
    });
    const tlsJson = transportSocket(json['transport_socket'], 'transport_socket', UPSTREAM_TLS_TYPE);
    // Bootstrap secrets are not visible to a cluster here: certificates must be inline or files.
    const tls = tlsJson ? upstreamTlsContext(tlsJson, 'transport_socket.typed_config', new Map()) : undefined;
    return { ok: true, value: { upstreamProtocol: upstreamProtocol(json), tls } };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [err.message] };
    throw err;
  }
}

function semanticErrors(msg: ProtoObject, type: DiscoveryType): string[] {
  const errors: string[] = [];
  if (type === 'EDS') {
    const eds = msg['eds_cluster_config'] as ProtoObject | null | undefined;
    const source = eds?.['eds_config'] as ProtoObject | null | undefined;
    if (!source) {
      errors.push('eds_cluster_config.eds_config: an EDS cluster needs an eds_config');
    } else if (!has(source, 'ads') && !has(source, 'self')) {
      errors.push('eds_cluster_config.eds_config: only ADS ({ads: {}} or {self: {}}) config sources are supported');
    }
  }
  const la = msg['load_assignment'] as ProtoObject | null | undefined;
  if (type === 'LOGICAL_DNS' && la) {
    const lles = (la['endpoints'] as ProtoObject[] | undefined) ?? [];
    const count = lles.reduce((n, l) => n + ((l['lb_endpoints'] as unknown[] | undefined)?.length ?? 0), 0);
    if (lles.length !== 1 || count !== 1) {
      errors.push('load_assignment: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint');
    }
  }
  if (type === 'STATIC' && la) {
    for (const [i, h] of claToHosts(la).entries()) {
      if (!/^[0-9.]+$|:/.test(h.address)) errors.push(`load_assignment: host ${i} '${h.address}' is not an IP address (STATIC cluster)`);
    }
  }
  return errors;
}

/**
 * An Envoy Cluster (decoded message) as our ClusterConfig. `source` (proto3 JSON with "@type", for /config_dump)
 * is computed on first read. Returns every PGV violation and semantic error with its field path.
 */
export function clusterToConfig(
  protos: EnvoyProtos,
  validator: ProtoValidator,
  msg: ProtoObject,
  meta: ClusterMeta,
): Decoded<ClusterConfig> {
  const name = String(msg['name'] ?? '');
  const all = validator.validate(protos.Cluster, msg);
  const violations = all.filter((v) => !v.inAny).map((v) => `${v.path}: ${v.message}`);
  if (violations.length > 0) return { name, ok: false, errors: violations, stage: 'decode' };
  // Inside typed_configs: found by the extension factory while the cluster is built, so that cluster alone fails.
  const errors: string[] = all.map((v) => `${v.path}: ${v.message}`);
  let type: DiscoveryType;
  let typeDetail = '';
  if (has(msg, 'cluster_type')) {
    type = 'UNSUPPORTED';
    typeDetail = `cluster_type ${String((msg['cluster_type'] as ProtoObject)['name'] ?? '')}`;
  } else {
    type = DISCOVERY_TYPES[Number(msg['type'] ?? 0)] ?? 'UNSUPPORTED';
    if (type === 'UNSUPPORTED') typeDetail = `type ${String(msg['type'])}`;
    if (type === 'ORIGINAL_DST') typeDetail = 'ORIGINAL_DST clusters have no host list';
  }
  errors.push(...semanticErrors(msg, type));
  if (errors.length > 0) return { name, ok: false, errors, stage: 'build' };
  // Read once every Any decodes (the errors above include those that do not).
  const protocol = protocolConfig(protos, msg);
  if (!protocol.ok) return { name, ok: false, errors: protocol.errors, stage: 'build' };
  const eds = msg['eds_cluster_config'] as ProtoObject | null | undefined;
  const la = msg['load_assignment'] as ProtoObject | null | undefined;
  const raw = meta.raw ?? protos.Cluster.encode(msg).finish();
  // /config_dump's form. A cluster from the API keeps only its bytes and builds it at first read (there may be
  // 10,000, rarely dumped); a bootstrap's cluster builds it now, while the registry is loaded. Neither keeps the
  // decoded message or the registry: either would keep the whole registry alive (see loadEnvoyProtos).
  const sourceOf = (registry: EnvoyProtos, decoded: ProtoObject): JsonObject =>
    ({ '@type': CDS_TYPE_URL, ...toProtoJson(registry, registry.Cluster, decoded, { unknownAny: 'opaque' }) });
  let source: JsonObject | undefined = meta.addedViaApi ? undefined : sourceOf(protos, msg);
  const config: ClusterConfig = {
    name,
    type,
    typeDetail,
    lbPolicy: LB_POLICIES[Number(msg['lb_policy'] ?? 0)] ?? 'ROUND_ROBIN',
    connectTimeoutMs: durationMs(msg['connect_timeout'], DEFAULT_CONNECT_TIMEOUT_MS),
    edsServiceName: type === 'EDS' ? String(eds?.['service_name'] ?? '') || name : '',
    ...(type === 'EDS' && has((eds?.['eds_config'] as ProtoObject | null | undefined) ?? {}, 'initial_fetch_timeout')
      ? { edsInitialFetchTimeoutMs: durationMs((eds!['eds_config'] as ProtoObject)['initial_fetch_timeout'], 0) }
      : {}),
    loadAssignment: type !== 'EDS' && la ? claToHosts(la) : [],
    dnsRefreshRateMs: durationMs(msg['dns_refresh_rate'], DEFAULT_DNS_REFRESH_RATE_MS),
    addedViaApi: meta.addedViaApi,
    versionInfo: meta.versionInfo,
    get source(): Readonly<Record<string, unknown>> {
      if (!source) {
        const registry = loadEnvoyProtos();
        source = sourceOf(registry, registry.Cluster.decode(raw) as unknown as ProtoObject);
      }
      return source;
    },
    hash: hashBytes(raw),
    upstreamProtocol: protocol.value.upstreamProtocol,
    ...(protocol.value.tls ? { tls: protocol.value.tls } : {}),
  };
  return { name, ok: true, value: config };
}

/** Decodes an Any value of type Cluster from the wire into a ClusterConfig. */
export function decodeCluster(
  protos: EnvoyProtos,
  validator: ProtoValidator,
  bytes: Uint8Array,
  versionInfo: string,
): Decoded<ClusterConfig> {
  let msg: ProtoObject;
  try {
    msg = protos.Cluster.decode(bytes) as unknown as ProtoObject;
  } catch (err) {
    return { name: '', ok: false, errors: [`cannot decode Cluster: ${(err as Error).message}`], stage: 'decode' };
  }
  return clusterToConfig(protos, validator, msg, { versionInfo, addedViaApi: true, raw: bytes });
}

/** CDS: wildcard; a SotW response is the full set of dynamic clusters. */
export const CLUSTER_TYPE: ResourceType<ClusterConfig> = {
  typeUrl: CDS_TYPE_URL,
  id: 'cds',
  messageName: 'envoy.config.cluster.v3.Cluster',
  wildcard: true,
  after: [],
  decode: (ctx, bytes, version) => decodeCluster(ctx.protos, ctx.validator, bytes, version),
};
