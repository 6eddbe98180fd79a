/**
 * Counters for the protocols a listener speaks, under Envoy's stat names (full names, as /stats prints them):
 * `http.<stat_prefix>.downstream_cx_http1_total` / `_http2_total` / `_ssl_total`, `downstream_rq_http1_total` /
 * `_http2_total`, and the TLS handshake outcomes of the listener's transport socket,
 * `listener.<address>_<port>.ssl.handshake`, `ssl.connection_error`, `ssl.no_certificate`,
 * `ssl.fail_verify_error`, `ssl.versions.<TLSv1.x>`. The stats renderer (src/observability/stats.ts) reads
 * snapshot(); a worker posts the same plain record and the main thread sums them.
 */
export class ProtocolStats {
  private readonly counters = new Map<string, number>();
  private readonly http: string;
  private listener: string;

  constructor(statPrefix: string, address: string, port: number) {
    this.http = `http.${statPrefix}.`;
    // Envoy names a listener's stats by its address: listener.127.0.0.1_10000.
    this.listener = `listener.${address}_${port}.`;
  }

  private inc(name: string): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + 1);
  }

  connection(codec: 'http1' | 'http2', tls: boolean): void {
    this.inc(`${this.http}downstream_cx_${codec}_total`);
    if (tls) this.inc(`${this.http}downstream_cx_ssl_total`);
  }

  request(codec: 'http1' | 'http2'): void {
    this.inc(`${this.http}downstream_rq_${codec}_total`);
  }

  handshake(version: string): void {
    this.inc(`${this.listener}ssl.handshake`);
    if (version) this.inc(`${this.listener}ssl.versions.${version}`);
  }

  /** A TLS connection that did not complete its handshake (Envoy ssl.connection_error). */
  connectionError(): void {
    this.inc(`${this.listener}ssl.connection_error`);
  }

  /** The client presented no certificate (Envoy ssl.no_certificate; fail_verify_no_cert when one was required). */
  noCertificate(required: boolean): void {
    this.inc(`${this.listener}ssl.no_certificate`);
    if (required) this.inc(`${this.listener}ssl.fail_verify_no_cert`);
  }

  /** The client's certificate did not verify against the trusted CA (Envoy ssl.fail_verify_error). */
  failVerify(): void {
    this.inc(`${this.listener}ssl.fail_verify_error`);
  }

  /** Rebinds the listener.* names to the bound port (kept counters move with them). */
  bound(address: string, port: number): void {
    const next = `listener.${address}_${port}.`;
    if (next === this.listener) return;
    for (const [k, v] of [...this.counters]) {
      if (!k.startsWith(this.listener)) continue;
      this.counters.delete(k);
      this.counters.set(next + k.slice(this.listener.length), v);
    }
    this.listener = next;
  }

  /** Counter name → value, plain data. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counters);
  }
}
