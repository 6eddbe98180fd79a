import type { FilterChainMatchConfig } from '../http/listener-config';

/**
 * Envoy's filter chain selection (listener_impl / filter_chain_manager_impl) over the criteria this data plane
 * evaluates, in Envoy's order: destination_port, server_names, transport_protocol, application_protocols. At each
 * step the most specific chains that match stay (an exact value beats a wildcard, which beats an unset criterion);
 * a connection no chain matches goes to the default chain, or is closed.
 */

export interface ConnectionMatchFacts {
  readonly localPort: number;
  /** SNI as the tls_inspector read it, lower-cased; '' when none (or no inspector). */
  readonly serverName: string;
  /** 'tls' when the inspector saw a ClientHello, else 'raw_buffer' (Envoy's default transport protocol). */
  readonly transportProtocol: 'tls' | 'raw_buffer';
  /** ALPN the client offered (tls_inspector), in its order. */
  readonly applicationProtocols: readonly string[];
}

interface Matchable {
  readonly match: FilterChainMatchConfig;
}

/** The best-scoring candidates; a score of -1 means "does not match". */
function keepBest<T>(candidates: readonly T[], score: (c: T) => number): T[] {
  let best = -1;
  let out: T[] = [];
  for (const c of candidates) {
    const s = score(c);
    if (s < 0 || s < best) continue;
    if (s > best) {
      best = s;
      out = [];
    }
    out.push(c);
  }
  return out;
}

/** server_names: exact 2^20 + length, `*.suffix` wildcard its suffix length (longer wins), unset 0. */
function serverNameScore(names: readonly string[], sni: string): number {
  if (names.length === 0) return 0;
  let best = -1;
  for (const n of names) {
    if (n === sni) return 1 << 20;
    if (n.startsWith('*.') && sni.length > n.length - 1 && sni.endsWith(n.slice(1))) best = Math.max(best, n.length);
  }
  return best;
}

export function selectFilterChain<T extends Matchable>(chains: readonly T[], facts: ConnectionMatchFacts): T | undefined {
  let c = keepBest(chains, (x) => (x.match.destinationPort === undefined ? 0 : x.match.destinationPort === facts.localPort ? 1 : -1));
  c = keepBest(c, (x) => serverNameScore(x.match.serverNames, facts.serverName));
  c = keepBest(c, (x) => (x.match.transportProtocol === '' ? 0 : x.match.transportProtocol === facts.transportProtocol ? 1 : -1));
  c = keepBest(c, (x) => (x.match.applicationProtocols.length === 0 ? 0 : facts.applicationProtocols.some((p) => x.match.applicationProtocols.includes(p)) ? 1 : -1));
  return c[0];
}
