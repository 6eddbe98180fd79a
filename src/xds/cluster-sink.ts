import type { ClusterConfig, HostSpec } from '../upstream/types';

/** What the CDS and EDS subscriptions drive: the ClusterManager satisfies this structurally. */
export interface ClusterSink {
  addOrUpdateCluster(config: ClusterConfig): string;
  setAssignment(serviceName: string, hosts: readonly HostSpec[] | undefined): void;
  removeCluster(name: string): boolean;
  edsServiceNames(): string[];
  activeClusters(): Iterable<{ readonly config: ClusterConfig }>;
  warming(): Iterable<ClusterConfig>;
}
