import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Emitter, type Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import { LoadBalancer, type ActiveRequests } from './load-balancer';
import { hostKey, isUsable, stripClusterParams, type ClusterConfig, type Host, type HostSpec } from './types';

/** A cluster that carries traffic: its config, its current hosts, and its load balancer. */
export class LiveCluster {
  readonly lb: LoadBalancer;
  readonly usableHosts: readonly Host[];
  readonly hostsByKey: ReadonlyMap<string, Host>;
  constructor(
    readonly config: ClusterConfig,
    readonly hosts: readonly Host[],
    /** When the hosts last changed (EDS/DNS update), for /config_dump and stats. */
    readonly membershipUpdated: Date = new Date(),
    lb?: LoadBalancer,
  ) {
    this.lb = lb ?? new LoadBalancer(config.lbPolicy);
    this.usableHosts = hosts.filter(isUsable);
    this.hostsByKey = new Map(hosts.map((h) => [h.key, h]));
  }

  get name(): string {
    return this.config.name;
  }

  /** Why plugins may not use this cluster for Redis, or '' if they may. */
  get unsupportedReason(): string {
    if (this.config.type === 'ORIGINAL_DST') return 'ORIGINAL_DST clusters have no host list to pool';
    if (this.config.type === 'UNSUPPORTED') return this.config.typeDetail || 'unsupported cluster type';
    return '';
  }

  chooseHost(activeRequests?: ActiveRequests): Host | undefined {
    return this.lb.choose(this.usableHosts, activeRequests);
  }

  /** Same config, new hosts; the LB (round-robin cursor) carries over. */
  withHosts(hosts: readonly Host[]): LiveCluster {
    return new LiveCluster(this.config, hosts, new Date(), this.lb);
  }
}

export type ClusterEvent =
  | { readonly type: 'added'; readonly cluster: LiveCluster }
  /** The config changed (and the new one has warmed): everything built from the old one must be rebuilt. */
  | { readonly type: 'updated'; readonly cluster: LiveCluster; readonly previous: LiveCluster }
  /** Same config, hosts changed. */
  | {
      readonly type: 'membership';
      readonly cluster: LiveCluster;
      readonly added: readonly Host[];
      readonly removed: readonly Host[];
    }
  | { readonly type: 'removed'; readonly name: string; readonly previous: LiveCluster };

export type UpdateOutcome = 'added' | 'updated' | 'unchanged' | 'warming';

export type DnsResolver = (hostname: string) => Promise<string[]>;

const defaultResolver: DnsResolver = async (hostname) => {
  const results = await lookup(hostname, { all: true, family: 4 });
  return results.map((r) => r.address);
};

interface WarmingCluster {
  readonly config: ClusterConfig;
  /** Set for DNS clusters while a refresh timer runs. */
  dnsTimer?: NodeJS.Timeout;
}

export interface ClusterManagerOptions {
  readonly logger?: Logger;
  readonly resolver?: DnsResolver;
}

/**
 * Owns every cluster: static ones from the bootstrap and dynamic ones from CDS. Clusters warm before they
 * serve (EDS until their ClusterLoadAssignment arrives, DNS until the first resolution); an updated cluster
 * keeps serving with its old definition until the new one has warmed, then the two swap atomically and
 * subscribers get one event. Data flows one way: producers call the mutators, consumers subscribe with onEvent().
 */
export class ClusterManager {
  private readonly active = new Map<string, LiveCluster>();
  private readonly warmingClusters = new Map<string, WarmingCluster>();
  /** Latest ClusterLoadAssignment per EDS service name, as HostSpecs. */
  private readonly assignments = new Map<string, readonly HostSpec[]>();
  private readonly dnsTimers = new Map<string, NodeJS.Timeout>();
  /**
   * EDS service name -> names of clusters (active or warming) that may watch it. Entries can be stale (a cluster
   * changed its service name or went away); setAssignment() re-checks each config, so the index only narrows the
   * search and keeps a CLA update O(watchers) instead of O(clusters).
   */
  private readonly watchers = new Map<string, Set<string>>();
  private readonly events: Emitter<ClusterEvent>;
  private readonly logger: Logger;
  private readonly resolver: DnsResolver;
  private closed = false;

  constructor(options: ClusterManagerOptions = {}) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'cluster_manager' });
    this.resolver = options.resolver ?? defaultResolver;
    this.events = new Emitter((err) => this.logger.error({ err }, 'cluster event listener failed'));
  }

  onEvent(listener: (event: ClusterEvent) => void): Disposable {
    return this.events.on(listener);
  }

  /** An active cluster by exact name or by a plugin's upstream string (parameters after `?` are ignored). */
  get(upstream: string): LiveCluster | undefined {
    return this.active.get(stripClusterParams(upstream));
  }

  activeClusters(): IterableIterator<LiveCluster> {
    return this.active.values();
  }

  warming(): IterableIterator<ClusterConfig> {
    return [...this.warmingClusters.values()].map((w) => w.config)[Symbol.iterator]();
  }

  /** Is a name known at all (active or warming)? */
  has(name: string): boolean {
    return this.active.has(name) || this.warmingClusters.has(name);
  }

  /** EDS service names that active or warming clusters need, for the EDS subscription. */
  edsServiceNames(): string[] {
    const names = new Set<string>();
    for (const c of this.active.values()) if (c.config.type === 'EDS') names.add(c.config.edsServiceName);
    for (const w of this.warmingClusters.values()) if (w.config.type === 'EDS') names.add(w.config.edsServiceName);
    return [...names];
  }

  /** Config of a cluster, active or warming (warming wins: it is the newest). */
  configOf(name: string): ClusterConfig | undefined {
    return this.warmingClusters.get(name)?.config ?? this.active.get(name)?.config;
  }

  addOrUpdateCluster(config: ClusterConfig): UpdateOutcome {
    if (this.closed) return 'unchanged';
    const current = this.configOf(config.name);
    if (current && current.hash === config.hash) return 'unchanged';
    this.cancelWarming(config.name);
    switch (config.type) {
      case 'STATIC':
      case 'ORIGINAL_DST':
      case 'UNSUPPORTED':
        return this.activate(config, toHosts(config.type === 'STATIC' ? config.loadAssignment : []));
      case 'EDS': {
        this.warmingClusters.set(config.name, { config });
        this.watch(config);
        const known = this.assignments.get(config.edsServiceName);
        // A service name with a cached assignment warms at once, as Envoy's EDS resource cache does for an
        // updated cluster, rather than waiting for a resend that a SotW server need not make.
        if (known) return this.activate(config, toHosts(known));
        return 'warming';
      }
      case 'STRICT_DNS':
      case 'LOGICAL_DNS': {
        const warming: WarmingCluster = { config };
        this.warmingClusters.set(config.name, warming);
        void this.resolveDns(config);
        return 'warming';
      }
    }
  }

  /**
   * Applies a ClusterLoadAssignment to every EDS cluster that watches `serviceName`: warming clusters become
   * active, active ones get a membership event. `undefined` hosts means the CLA was removed (Delta).
   */
  setAssignment(serviceName: string, hosts: readonly HostSpec[] | undefined): void {
    if (this.closed) return;
    if (hosts === undefined) {
      this.assignments.delete(serviceName);
      return;
    }
    this.assignments.set(serviceName, hosts);
    const names = this.watchers.get(serviceName);
    if (!names) return;
    for (const name of [...names]) {
      const w = this.warmingClusters.get(name);
      const c = this.active.get(name);
      const watching = (cfg: ClusterConfig | undefined): boolean => cfg?.type === 'EDS' && cfg.edsServiceName === serviceName;
      if (!watching(w?.config) && !watching(c?.config)) {
        names.delete(name); // stale index entry
        continue;
      }
      if (w && watching(w.config)) {
        this.warmingClusters.delete(name);
        this.activate(w.config, toHosts(hosts));
      } else if (c && watching(c.config)) {
        this.replaceHosts(c, toHosts(hosts));
      }
    }
    if (names.size === 0) this.watchers.delete(serviceName);
  }

  private watch(config: ClusterConfig): void {
    let names = this.watchers.get(config.edsServiceName);
    if (!names) {
      names = new Set();
      this.watchers.set(config.edsServiceName, names);
    }
    names.add(config.name);
  }

  /** The last assignment received for a service name (for /config_dump?include_eds). */
  assignment(serviceName: string): readonly HostSpec[] | undefined {
    return this.assignments.get(serviceName);
  }

  removeCluster(name: string): boolean {
    this.cancelWarming(name);
    const wasWarming = this.warmingClusters.delete(name);
    const previous = this.active.get(name);
    if (!previous) return wasWarming;
    this.active.delete(name);
    this.stopDns(name);
    this.events.emit({ type: 'removed', name, previous });
    return true;
  }

  close(): void {
    this.closed = true;
    for (const name of [...this.dnsTimers.keys()]) this.stopDns(name);
    this.warmingClusters.clear();
  }

  private cancelWarming(name: string): void {
    const w = this.warmingClusters.get(name);
    if (w) this.warmingClusters.delete(name);
    this.stopDns(name);
  }

  private activate(config: ClusterConfig, hosts: Host[]): UpdateOutcome {
    const previous = this.active.get(config.name);
    const cluster = new LiveCluster(config, hosts);
    this.active.set(config.name, cluster);
    if (config.type === 'STRICT_DNS' || config.type === 'LOGICAL_DNS') this.scheduleDns(config);
    if (previous) {
      this.events.emit({ type: 'updated', cluster, previous });
      return 'updated';
    }
    this.events.emit({ type: 'added', cluster });
    return 'added';
  }

  private replaceHosts(cluster: LiveCluster, hosts: Host[]): void {
    const before = cluster.hostsByKey;
    const after = new Map(hosts.map((h) => [h.key, h]));
    const added = hosts.filter((h) => !sameHost(before.get(h.key), h));
    const removed = [...before.values()].filter((h) => !sameHost(after.get(h.key), h));
    if (added.length === 0 && removed.length === 0) return;
    const next = cluster.withHosts(hosts);
    this.active.set(cluster.name, next);
    this.events.emit({ type: 'membership', cluster: next, added, removed });
  }

  private scheduleDns(config: ClusterConfig): void {
    this.stopDns(config.name);
    const timer = setTimeout(() => {
      this.dnsTimers.delete(config.name);
      void this.resolveDns(config);
    }, config.dnsRefreshRateMs);
    timer.unref();
    this.dnsTimers.set(config.name, timer);
  }

  private stopDns(name: string): void {
    const t = this.dnsTimers.get(name);
    if (t) clearTimeout(t);
    this.dnsTimers.delete(name);
  }

  private async resolveDns(config: ClusterConfig): Promise<void> {
    let hosts: Host[];
    try {
      hosts = await this.resolveSpecs(config);
    } catch (err) {
      this.logger.warn({ cluster: config.name, err: String(err) }, 'DNS resolution failed; keeping current hosts');
      if (this.configOf(config.name)?.hash === config.hash && !this.closed) this.scheduleDns(config);
      return;
    }
    if (this.closed || this.configOf(config.name)?.hash !== config.hash) return; // superseded meanwhile
    const warming = this.warmingClusters.get(config.name);
    if (warming && warming.config.hash === config.hash) {
      this.warmingClusters.delete(config.name);
      this.activate(config, hosts);
      return;
    }
    const live = this.active.get(config.name);
    if (live && live.config.hash === config.hash) {
      // LOGICAL_DNS: connections are not drained on change (Envoy); the single logical host keeps its key.
      this.replaceHosts(live, hosts);
      this.scheduleDns(config);
    }
  }

  private async resolveSpecs(config: ClusterConfig): Promise<Host[]> {
    const out = new Map<string, Host>();
    for (const spec of config.loadAssignment) {
      const ips = isIP(spec.address) ? [spec.address] : await this.resolver(spec.address);
      const chosen = config.type === 'LOGICAL_DNS' ? ips.slice(0, 1) : ips;
      for (const ip of chosen) {
        const host: Host = { ...spec, address: ip, hostname: spec.hostname || spec.address, key: hostKey(ip, spec.port) };
        if (!out.has(host.key)) out.set(host.key, host);
      }
      if (config.type === 'LOGICAL_DNS' && out.size > 0) break;
    }
    return [...out.values()];
  }
}

function toHosts(specs: readonly HostSpec[]): Host[] {
  const out = new Map<string, Host>();
  for (const spec of specs) {
    const key = hostKey(spec.address, spec.port);
    if (!out.has(key)) out.set(key, { ...spec, key }); // duplicates: the first wins (Envoy eds.cc)
  }
  return [...out.values()];
}

function sameHost(a: Host | undefined, b: Host): boolean {
  return a !== undefined && a.health === b.health && a.weight === b.weight && a.priority === b.priority;
}
