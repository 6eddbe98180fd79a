import { connect as tlsConnect } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { Pool } from './undici-pool';
import { upstreamTlsConnectOptions, type UpstreamTls } from '../tls/tls-context';
import { Http2Upstream, type H2DispatchHandler, type H2DispatchOptions } from './h2-upstream';
import type { Http2Settings } from './protocol-options';

/**
 * auto_config over TLS (Envoy's ALPN pool): the first request to a host learns by ALPN whether it speaks h2 or
 * http/1.1, then every request goes to that host's HTTP/2 session (which carries trailers, for gRPC) or to an
 * HTTP/1.1 pool. The probe's own connection is closed; a probe that fails fails the requests that waited for
 * it, and the next request probes again.
 */
export interface AlpnUpstreamOptions {
  readonly host: string;
  readonly connectTimeoutMs: number;
  readonly tls: UpstreamTls;
  readonly settings: Http2Settings;
  /** The HTTP/1.1 pool, made only if the host chose http/1.1. */
  readonly http1: () => Pool;
}

type Chosen = Http2Upstream | Pool;

class ProbeTimeoutError extends Error {
  override name = 'ProbeTimeoutError';
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';
}

export class AlpnUpstream {
  private chosen: Chosen | undefined;
  private probing: Promise<Chosen> | undefined;
  private closed = false;

  constructor(private readonly options: AlpnUpstreamOptions) {}

  private probe(): Promise<Chosen> {
    this.probing ??= new Promise<Chosen>((resolve, reject) => {
      const { host, tls, connectTimeoutMs } = this.options;
      const i = host.lastIndexOf(':');
      const hostname = host.startsWith('[') ? host.slice(1, i - 1) : host.slice(0, i);
      const socket = tlsConnect({
        host: hostname, port: Number(host.slice(i + 1)), ALPNProtocols: ['h2', 'http/1.1'], ...upstreamTlsConnectOptions(tls),
      });
      const timer = connectTimeoutMs > 0 ? setTimeout(() => socket.destroy(new ProbeTimeoutError(`connect timeout after ${connectTimeoutMs}ms`)), connectTimeoutMs) : undefined;
      socket.once('secureConnect', () => {
        if (timer) clearTimeout(timer);
        const h2 = socket.alpnProtocol === 'h2';
        socket.destroy();
        const chosen: Chosen = h2
          ? new Http2Upstream({ host, connectTimeoutMs, tls, settings: this.options.settings })
          : this.options.http1();
        this.chosen = chosen;
        resolve(chosen);
      });
      socket.once('error', (err) => {
        if (timer) clearTimeout(timer);
        this.probing = undefined;
        reject(err);
      });
    });
    return this.probing;
  }

  dispatch(opts: H2DispatchOptions, handler: H2DispatchHandler): boolean {
    const send = (to: Chosen): void => {
      if (to instanceof Http2Upstream) to.dispatch(opts, handler);
      else to.dispatch({ path: opts.path, method: opts.method as Dispatcher.HttpMethod, headers: opts.headers as string[] | null | undefined, body: opts.body ?? null, headersTimeout: 0, bodyTimeout: 0 }, handler);
    };
    if (this.chosen) {
      send(this.chosen);
      return true;
    }
    // Until the probe answers: a controller that the handler may abort while waiting.
    let aborted: Error | null = null;
    const waiting: Dispatcher.DispatchController = {
      get aborted() { return aborted !== null; },
      get paused() { return false; },
      get reason() { return aborted; },
      abort(reason: Error) { aborted ??= reason; },
      pause() {},
      resume() {},
    };
    if (this.closed) {
      handler.onRequestStart?.(waiting, {});
      handler.onResponseError?.(waiting, new Error('upstream pool is closed'));
      return true;
    }
    this.probe().then(
      (to) => {
        if (aborted) return;
        send(to);
      },
      (err: Error) => {
        if (aborted) return;
        handler.onRequestStart?.(waiting, {});
        if (!aborted) handler.onResponseError?.(waiting, err);
      },
    );
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chosen?.close();
  }

  async destroy(): Promise<void> {
    this.closed = true;
    await this.chosen?.destroy();
  }
}
