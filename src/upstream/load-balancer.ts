import type { Host, LbPolicy } from './types';

/** Per-host load, supplied by the caller for LEAST_REQUEST (e.g. a pool's in-flight count). */
export type ActiveRequests = (host: Host) => number;

/**
 * Picks one host from the usable set. Stateless policies ignore `state`; ROUND_ROBIN keeps a cursor.
 * LEAST_REQUEST follows Envoy's power-of-two-choices: two random hosts, the less loaded wins.
 */
export class LoadBalancer {
  private cursor = 0;
  constructor(
    readonly policy: LbPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  choose(hosts: readonly Host[], activeRequests?: ActiveRequests): Host | undefined {
    const n = hosts.length;
    if (n === 0) return undefined;
    if (n === 1) return hosts[0];
    switch (this.policy) {
      case 'RANDOM':
        return hosts[Math.floor(this.random() * n)];
      case 'LEAST_REQUEST': {
        const a = hosts[Math.floor(this.random() * n)]!;
        const b = hosts[Math.floor(this.random() * n)]!;
        if (!activeRequests) return a;
        return activeRequests(b) < activeRequests(a) ? b : a;
      }
      default: {
        const host = hosts[this.cursor % n];
        this.cursor = (this.cursor + 1) % n;
        return host;
      }
    }
  }
}
