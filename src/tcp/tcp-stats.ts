/**
 * Counters of TCP listeners under Envoy's full stat names (as /stats prints them):
 *
 *   tcp.<stat_prefix>.downstream_cx_total | downstream_cx_no_route | downstream_cx_rx_bytes_total |
 *     downstream_cx_tx_bytes_total | downstream_flow_control_paused_reading_total |
 *     downstream_flow_control_resumed_reading_total | idle_timeout | upstream_flush_total
 *   cluster.<c>.upstream_cx_total | upstream_cx_connect_fail | upstream_cx_connect_timeout | upstream_cx_none_healthy |
 *     upstream_cx_rx_bytes_total | upstream_cx_tx_bytes_total
 *   listener.<address>_<port>.downstream_cx_total | downstream_cx_destroy
 *
 * The byte counters are wire bytes (what crossed the socket), as Envoy's connection stats count them: a plugin
 * that rewrites data changes tx, not rx. snapshot() is plain data: the stats renderer reads it, and a worker
 * posts it for the main thread to sum, as the HTTP listener's ProtocolStats does.
 */
export class TcpStats {
  private readonly counters = new Map<string, number>();

  add(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  get(name: string): number {
    return this.counters.get(name) ?? 0;
  }

  /** Counter name → value. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counters);
  }
}

/** The stat names one tcp_proxy filter records, built once per listener rather than per byte. */
export class TcpProxyStatNames {
  readonly cxTotal: string;
  readonly noRoute: string;
  readonly rxBytes: string;
  readonly txBytes: string;
  readonly pausedReading: string;
  readonly resumedReading: string;
  readonly idleTimeout: string;
  readonly upstreamFlush: string;

  constructor(statPrefix: string) {
    const p = `tcp.${statPrefix}.`;
    this.cxTotal = `${p}downstream_cx_total`;
    this.noRoute = `${p}downstream_cx_no_route`;
    this.rxBytes = `${p}downstream_cx_rx_bytes_total`;
    this.txBytes = `${p}downstream_cx_tx_bytes_total`;
    this.pausedReading = `${p}downstream_flow_control_paused_reading_total`;
    this.resumedReading = `${p}downstream_flow_control_resumed_reading_total`;
    this.idleTimeout = `${p}idle_timeout`;
    this.upstreamFlush = `${p}upstream_flush_total`;
  }
}

/** cluster.<c>.upstream_cx_* for one cluster (by its stat name: alt_stat_name, `:` → `_`). */
export class UpstreamCxStatNames {
  readonly total: string;
  readonly connectFail: string;
  readonly connectTimeout: string;
  readonly noneHealthy: string;
  readonly rxBytes: string;
  readonly txBytes: string;

  constructor(clusterStatName: string) {
    const p = `cluster.${clusterStatName}.`;
    this.total = `${p}upstream_cx_total`;
    this.connectFail = `${p}upstream_cx_connect_fail`;
    this.connectTimeout = `${p}upstream_cx_connect_timeout`;
    this.noneHealthy = `${p}upstream_cx_none_healthy`;
    this.rxBytes = `${p}upstream_cx_rx_bytes_total`;
    this.txBytes = `${p}upstream_cx_tx_bytes_total`;
  }
}
