import * as protobuf from 'protobufjs';
import type { HealthStatus, HostSpec } from '../../upstream/types';
import type { ProtoObject } from '../proto-json';
import type { EnvoyProtos } from '../protos';
import type { ProtoValidator } from '../validate';
import { CDS_TYPE_URL, EDS_TYPE_URL } from '../type-urls';
import type { Decoded, ResourceType } from './types';

/** `envoy.config.core.v3.HealthStatus` by number. */
const HEALTH_BY_NUMBER: readonly HealthStatus[] = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

export interface EndpointAssignment {
  /** `cluster_name`: the EDS service name this assignment is for. */
  readonly serviceName: string;
  readonly hosts: readonly HostSpec[];
}

function wrapperValue(v: unknown, fallback: number): number {
  if (v && typeof v === 'object' && 'value' in v) return Number((v as { value: unknown }).value ?? fallback);
  return fallback;
}

/**
 * A ClusterLoadAssignment (decoded message or plain object) as HostSpecs: all priorities, health as given, weight
 * from `load_balancing_weight` (default 1). Endpoints without a socket address (pipes, internal addresses) carry
 * no host the sidecar can dial and are skipped.
 */
export function claToHosts(cla: ProtoObject): HostSpec[] {
  const hosts: HostSpec[] = [];
  for (const lle of (cla['endpoints'] as ProtoObject[] | undefined) ?? []) {
    const loc = (lle['locality'] as ProtoObject | null | undefined) ?? {};
    const locality = { region: String(loc['region'] ?? ''), zone: String(loc['zone'] ?? ''), subZone: String(loc['sub_zone'] ?? '') };
    const priority = Number(lle['priority'] ?? 0);
    for (const lbe of (lle['lb_endpoints'] as ProtoObject[] | undefined) ?? []) {
      const endpoint = lbe['endpoint'] as ProtoObject | null | undefined;
      const sock = ((endpoint?.['address'] as ProtoObject | null | undefined)?.['socket_address'] as ProtoObject | null | undefined) ?? undefined;
      if (!endpoint || !sock) continue;
      const health = HEALTH_BY_NUMBER[Number(lbe['health_status'] ?? 0)] ?? 'UNKNOWN';
      hosts.push({
        address: String(sock['address'] ?? ''),
        port: Number(sock['port_value'] ?? 0),
        health,
        weight: wrapperValue(lbe['load_balancing_weight'], 1),
        priority,
        hostname: String(endpoint['hostname'] ?? ''),
        locality,
      });
    }
  }
  return hosts;
}

/** Decodes and validates one ClusterLoadAssignment (Envoy eds.cc plus PGV). */
export function decodeClusterLoadAssignment(
  protos: EnvoyProtos,
  validator: ProtoValidator,
  bytes: Uint8Array,
): Decoded<EndpointAssignment> {
  let msg: ProtoObject;
  try {
    msg = protos.ClusterLoadAssignment.decode(bytes) as unknown as ProtoObject;
  } catch (err) {
    return { name: '', ok: false, errors: [`cannot decode ClusterLoadAssignment: ${(err as Error).message}`], stage: 'decode' };
  }
  return claFromMessage(protos.ClusterLoadAssignment, validator, msg);
}

export function claFromMessage(type: protobuf.Type, validator: ProtoValidator, msg: ProtoObject): Decoded<EndpointAssignment> {
  const name = String(msg['cluster_name'] ?? '');
  const errors = validator.validate(type, msg).map((v) => `${v.path}: ${v.message}`);
  if (errors.length > 0) return { name, ok: false, errors, stage: 'decode' };
  return { name, ok: true, value: { serviceName: name, hosts: claToHosts(msg) } };
}

/** EDS: named by the EDS clusters' service names; requested after each CDS update with the complete set. */
export const ENDPOINT_TYPE: ResourceType<EndpointAssignment> = {
  typeUrl: EDS_TYPE_URL,
  id: 'eds',
  messageName: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  wildcard: false,
  after: [CDS_TYPE_URL],
  decode: (ctx, bytes) => decodeClusterLoadAssignment(ctx.protos, ctx.validator, bytes),
};
