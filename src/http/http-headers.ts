import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderPairs } from '../common/headers';

/** Connection-level headers an HTTP/1.1 proxy never forwards (RFC 9110 §7.6.1, Envoy's codec). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings']);

/** node:http rawHeaders → lower-case pairs, hop-by-hop dropped, in arrival order. */
export function pairsFromRaw(raw: readonly string[]): HeaderPairs {
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(k)) out.push([k, raw[i + 1]!]);
  }
  return out;
}

/** A `te` header value that lists `trailers` (the one TE value Envoy forwards). */
function listsTrailers(te: string): boolean {
  return te.split(',').some((v) => v.trim().split(';')[0]!.toLowerCase() === 'trailers');
}

/**
 * An HTTP/1 request's rawHeaders appended to `out` (after its pseudo-headers) in one pass: names lower-cased,
 * hop-by-hop and `host` dropped (it becomes :authority), `te: trailers` kept as keepTeTrailers does. Returns the
 * first `host` value.
 */
export function appendRequestPairs(raw: readonly string[], out: HeaderPairs): string | undefined {
  let host: string | undefined;
  let teTrailers = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    if (k === 'host') host ??= v;
    else if (!HOP_BY_HOP.has(k)) out.push([k, v]);
    else if (k === 'te' && !teTrailers) teTrailers = listsTrailers(v);
  }
  if (teTrailers) out.push(['te', 'trailers']);
  return host;
}

/**
 * Envoy keeps `te: trailers` (and only that TE value) on a request: gRPC needs it end to end. The rest of TE is
 * hop-by-hop. Appends the pair when a `te` header in `raw` (name, value, ...) lists trailers.
 */
export function keepTeTrailers(raw: readonly string[], out: HeaderPairs): void {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'te') continue;
    if (listsTrailers(raw[i + 1]!)) {
      out.push(['te', 'trailers']);
      return;
    }
  }
}

/**
 * undici's parsed header object → pairs (repeated names stay separate), hop-by-hop dropped; appended to `out` when
 * given (a response's map after its :status, with no second array). A for-in walk: Object.entries built an array
 * per header.
 */
export function pairsFromObject(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, out: HeaderPairs = []): HeaderPairs {
  for (const k in headers) {
    const v = headers[k];
    const name = k.toLowerCase();
    if (v === undefined || HOP_BY_HOP.has(name)) continue;
    if (Array.isArray(v)) for (const x of v) out.push([name, x]);
    else out.push([name, v]);
  }
  return out;
}

export { getHeader } from '../common/headers';

export function setHeader(headers: HeaderPairs, name: string, value: string): void {
  const i = headers.findIndex(([k]) => k === name);
  if (i === -1) headers.push([name, value]);
  else {
    headers[i] = [name, value];
    for (let j = headers.length - 1; j > i; j--) if (headers[j]![0] === name) headers.splice(j, 1);
  }
}

export function removeHeader(headers: HeaderPairs, name: string): void {
  for (let j = headers.length - 1; j >= 0; j--) if (headers[j]![0] === name) headers.splice(j, 1);
}

/** Pairs without pseudo-headers and hop-by-hop names, flattened for undici / node:http ([k1, v1, k2, v2, ...]). */
export function flatten(headers: HeaderPairs, skip: ReadonlySet<string> = HOP_BY_HOP): string[] {
  const out: string[] = [];
  for (const [k, v] of headers) {
    if (k.startsWith(':') || skip.has(k)) continue;
    out.push(k, v);
  }
  return out;
}
