/**
 * Envoy's per-cluster and per-host request counters for routed HTTP traffic (cluster.<name>.upstream_rq_*, and
 * the host lines of /clusters: rq_total, rq_success, rq_error, rq_timeout, rq_active, cx_connect_fail). The
 * router records into it; /stats, /stats/prometheus and /clusters read snapshots. With --concurrency N every
 * worker keeps its own and the main thread sums their snapshots, as Envoy's stats store shows one value per
 * name whatever the thread.
 */

export interface HostTraffic {
  rq_total: number;
  rq_success: number;
  rq_error: number;
  rq_timeout: number;
  rq_active: number;
  cx_connect_fail: number;
}

export interface ClusterTraffic {
  /** Counters by Envoy's stat name without the `cluster.<name>.` prefix (upstream_rq_total, upstream_rq_200, ...). */
  readonly counters: Record<string, number>;
  /** upstream_rq_active. */
  active: number;
  readonly hosts: Record<string, HostTraffic>;
}

/** Plain data: what a worker posts and the admin reads. */
export type TrafficSnapshot = Readonly<Record<string, ClusterTraffic>>;

export type UpstreamFailure = 'timeout' | 'connect_fail' | 'reset';

function emptyHost(): HostTraffic {
  return { rq_total: 0, rq_success: 0, rq_error: 0, rq_timeout: 0, rq_active: 0, cx_connect_fail: 0 };
}

/** One routed request's accounting; every method after the first call of finish/fail is a no-op. */
export interface UpstreamRequestRecord {
  /** The upstream answered with `status` (counted once, when response headers arrive). */
  response(status: number): void;
  /** The request ended before a response: timeout, connection failure or reset. */
  fail(reason: UpstreamFailure): void;
  /** The stream is over (response complete, failed, or downstream gone): rq_active drops. */
  done(): void;
}

export class UpstreamTrafficStats {
  private readonly clusters = new Map<string, ClusterTraffic>();

  private cluster(name: string): ClusterTraffic {
    let c = this.clusters.get(name);
    if (!c) this.clusters.set(name, (c = { counters: {}, active: 0, hosts: {} }));
    return c;
  }

  /** A request sent to `host` (`address:port`) of `cluster`. */
  request(cluster: string, host: string): UpstreamRequestRecord {
    const c = this.cluster(cluster);
    const h = (c.hosts[host] ??= emptyHost());
    const bump = (name: string): void => {
      c.counters[name] = (c.counters[name] ?? 0) + 1;
    };
    c.active++;
    h.rq_active++;
    let answered = false;
    let finished = false;
    // Envoy counts upstream_rq_total when the request is attached to a connection: not for a failed connect.
    let counted = false;
    const countOnce = (): void => {
      if (counted) return;
      counted = true;
      bump('upstream_rq_total');
      h.rq_total++;
    };
    return {
      response(status: number): void {
        if (answered) return;
        answered = true;
        countOnce();
        bump(`upstream_rq_${status}`);
        bump(`upstream_rq_${Math.floor(status / 100)}xx`);
        bump('upstream_rq_completed');
        // Envoy's host rq_error counts 5xx responses and failures; everything else is a success.
        if (status >= 500) h.rq_error++;
        else h.rq_success++;
      },
      fail(reason: UpstreamFailure): void {
        if (answered) return;
        answered = true;
        // Envoy charges an aborted request with the code of the local reply it makes (router's
        // chargeUpstreamAbort): 504 for a timeout, 503 otherwise; it counts as completed.
        const code = reason === 'timeout' ? 504 : 503;
        if (reason !== 'connect_fail') countOnce();
        bump(`upstream_rq_${code}`);
        bump('upstream_rq_5xx');
        bump('upstream_rq_completed');
        h.rq_error++;
        if (reason === 'timeout') {
          bump('upstream_rq_timeout');
          h.rq_timeout++;
        } else if (reason === 'connect_fail') {
          bump('upstream_cx_connect_fail');
          h.cx_connect_fail++;
        } else {
          bump('upstream_rq_rx_reset');
        }
      },
      done(): void {
        if (finished) return;
        finished = true;
        if (!answered) countOnce(); // ended by the downstream or a filter while in flight
        c.active--;
        h.rq_active--;
      },
    };
  }

  snapshot(): TrafficSnapshot {
    const out: Record<string, ClusterTraffic> = {};
    for (const [name, c] of this.clusters) {
      out[name] = { counters: { ...c.counters }, active: c.active, hosts: Object.fromEntries(Object.entries(c.hosts).map(([k, h]) => [k, { ...h }])) };
    }
    return out;
  }
}

/** The sum of several snapshots (one per worker), counter by counter and host by host. */
export function sumTraffic(snapshots: readonly TrafficSnapshot[]): TrafficSnapshot {
  const out: Record<string, ClusterTraffic> = {};
  for (const snap of snapshots) {
    for (const [name, c] of Object.entries(snap)) {
      const t = (out[name] ??= { counters: {}, active: 0, hosts: {} });
      for (const [k, v] of Object.entries(c.counters)) t.counters[k] = (t.counters[k] ?? 0) + v;
      t.active += c.active;
      for (const [host, h] of Object.entries(c.hosts)) {
        const th = (t.hosts[host] ??= emptyHost());
        for (const k of Object.keys(th) as Array<keyof HostTraffic>) th[k] += h[k];
      }
    }
  }
  return out;
}
