import { ConfigError } from '../common/errors';
import type { Bootstrap } from '../config/bootstrap';
import { durationMs } from '../http/listener-config';

/** dynamic_resources.lds_config: listeners over the ADS stream, with its initial_fetch_timeout (default 15 s). */
export interface LdsConfig {
  readonly initialFetchTimeoutMs: number;
}

const FIELDS = new Set(['ads', 'initial_fetch_timeout', 'resource_api_version']);

/** Reads lds_config from the bootstrap (canonical proto3 JSON); only `ads: {}` sources are served. */
export function ldsConfig(bootstrap: Bootstrap): LdsConfig | undefined {
  const dyn = bootstrap.json['dynamic_resources'];
  const lds = dyn && typeof dyn === 'object' && !Array.isArray(dyn) ? (dyn as Record<string, unknown>)['lds_config'] : undefined;
  if (lds === undefined || lds === null) return undefined;
  const path = 'dynamic_resources.lds_config';
  const o = lds as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && !FIELDS.has(k)) throw new ConfigError('is not supported by this data plane', `${path}.${k}`);
  if (o['ads'] === undefined || o['ads'] === null) throw new ConfigError('only ADS is supported for LDS (lds_config: {ads: {}})', path);
  if (!bootstrap.ads) throw new ConfigError('lds_config uses ADS but dynamic_resources.ads_config is missing', `${path}.ads`);
  return { initialFetchTimeoutMs: durationMs(o['initial_fetch_timeout'], `${path}.initial_fetch_timeout`) ?? 15_000 };
}
