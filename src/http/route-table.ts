import type { HeaderPairs } from '../common/headers';
import type { HeaderMatcher, RouteConfigEntry, RouteTableConfig, StringMatcher, VirtualHostConfig } from './listener-config';

/**
 * Envoy's route selection for an inline RouteConfiguration: virtual host by :authority (exact, then the
 * longest `*.suffix`/`*suffix` wildcard, then the longest `prefix*`, then `*`; port stripped when no domain
 * names one), then the first route whose path and header matchers all match.
 */

export interface RouteSelection {
  readonly virtualHost: VirtualHostConfig;
  readonly route: RouteConfigEntry;
}

function matchString(m: StringMatcher, value: string): boolean {
  if (m.kind === 'regex') return m.regex.test(value);
  const v = m.ignoreCase ? value.toLowerCase() : value;
  const want = m.ignoreCase ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'exact': return v === want;
    case 'prefix': return v.startsWith(want);
    case 'suffix': return v.endsWith(want);
    case 'contains': return v.includes(want);
  }
}

function headerValue(headers: HeaderPairs, name: string): string | undefined {
  // Repeated headers are matched joined with ',' (Envoy).
  let out: string | undefined;
  for (const [k, v] of headers) if (k === name) out = out === undefined ? v : `${out},${v}`;
  return out;
}

function matchHeader(m: HeaderMatcher, headers: HeaderPairs): boolean {
  const value = headerValue(headers, m.name);
  let ok: boolean;
  if (m.match.kind === 'present') ok = (value !== undefined) === m.match.present;
  else ok = value !== undefined && matchString(m.match.matcher, value);
  return m.invert ? !ok : ok;
}

function matchPath(route: RouteConfigEntry, path: string): boolean {
  const q = path.indexOf('?');
  const noQuery = q === -1 ? path : path.slice(0, q);
  const cmp = (a: string) => (route.caseSensitive ? a : a.toLowerCase());
  switch (route.path.kind) {
    case 'prefix': return cmp(path).startsWith(cmp(route.path.value));
    case 'path': return cmp(noQuery) === cmp(route.path.value);
    case 'regex': return route.path.regex.test(noQuery);
  }
}

/** `host:port` → `host` (IPv6 `[::1]:80` → `[::1]`); a host without a port is returned as is. */
export function stripPort(host: string): string {
  const colon = host.lastIndexOf(':');
  if (colon <= 0 || host.endsWith(']')) return host;
  if (host.startsWith('[') ? host[colon - 1] !== ']' : host.indexOf(':') !== colon) return host; // a bare IPv6 literal
  return /^\d+$/.test(host.slice(colon + 1)) ? host.slice(0, colon) : host;
}

export class RouteTable {
  private readonly exact = new Map<string, VirtualHostConfig>();
  private readonly suffixes: Array<[string, VirtualHostConfig]> = [];
  private readonly prefixes: Array<[string, VirtualHostConfig]> = [];
  private defaultHost: VirtualHostConfig | undefined;

  constructor(readonly config: RouteTableConfig) {
    for (const vh of config.virtualHosts) {
      for (const d of vh.domains) {
        if (d === '*') this.defaultHost ??= vh;
        else if (d.startsWith('*')) this.suffixes.push([d.slice(1), vh]);
        else if (d.endsWith('*')) this.prefixes.push([d.slice(0, -1), vh]);
        else if (!this.exact.has(d)) this.exact.set(d, vh);
      }
    }
    // Longest wildcard wins.
    this.suffixes.sort((a, b) => b[0].length - a[0].length);
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
  }

  /**
   * Envoy RouteMatcher::findVirtualHost: the lower-cased :authority as sent, port included; with the route
   * configuration's ignore_port_in_host_matching, without its port.
   */
  virtualHost(authority: string): VirtualHostConfig | undefined {
    const host = authority.toLowerCase();
    return this.findHost(this.config.ignorePortInHostMatching ? stripPort(host) : host) ?? this.defaultHost;
  }

  private findHost(host: string): VirtualHostConfig | undefined {
    const e = this.exact.get(host);
    if (e) return e;
    for (const [suffix, vh] of this.suffixes) if (host.length > suffix.length && host.endsWith(suffix)) return vh;
    for (const [prefix, vh] of this.prefixes) if (host.length > prefix.length && host.startsWith(prefix)) return vh;
    return undefined;
  }

  /** The selected route, or undefined (Envoy: 404 NR). `headers` are the request headers with pseudo-headers. */
  select(headers: HeaderPairs): RouteSelection | undefined {
    const authority = headerValue(headers, ':authority') ?? '';
    const path = headerValue(headers, ':path') ?? '/';
    const vh = this.virtualHost(authority);
    if (!vh) return undefined;
    for (const route of vh.routes) {
      if (matchPath(route, path) && route.headers.every((h) => matchHeader(h, headers))) return { virtualHost: vh, route };
    }
    return undefined;
  }
}

/** RouteAction.prefix_rewrite: replaces the matched prefix (path and prefix matches; regex routes keep the path). */
export function rewritePath(route: RouteConfigEntry, path: string, prefixRewrite: string | undefined): string {
  if (prefixRewrite === undefined) return path;
  if (route.path.kind === 'prefix') return prefixRewrite + path.slice(route.path.value.length);
  if (route.path.kind === 'path') {
    const q = path.indexOf('?');
    return prefixRewrite + (q === -1 ? '' : path.slice(q));
  }
  return path;
}
