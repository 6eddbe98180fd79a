import { connect as h2connect, constants as h2constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { HeaderPairs } from '../common/headers';
import { upstreamTlsConnectOptions, type UpstreamTls } from '../tls/tls-context';
import type { Http2Settings } from './protocol-options';

/**
 * HTTP/2 to one upstream host over node:http2 (h2c prior knowledge, or TLS with ALPN h2), behind the same
 * undici DispatchHandler interface the router uses for its HTTP/1.1 pools. undici's HTTP/2 client neither
 * sends request trailers nor reliably delivers response trailers (its stream 'end' can complete the request
 * before 'trailers' arrives), and gRPC lives in trailers; this one carries both.
 *
 * One session per host, as Envoy's HTTP/2 pool multiplexes a connection; a session that failed, closed or
 * received GOAWAY is replaced on the next request.
 */

export interface H2DispatchOptions {
  readonly path: string;
  readonly method: string;
  /** Flat [name, value, ...] pairs, or an object; `host` becomes :authority. */
  readonly headers?: readonly string[] | Readonly<Record<string, string | string[] | undefined>> | null;
  readonly body?: Buffer | Readable | string | null;
  /** Request trailers, read when the body has ended (an HTTP/2 request carries them; HTTP/1.1 here does not). */
  readonly trailers?: () => HeaderPairs | undefined;
}

/**
 * The router's handler, told when the response headers end the stream (a gRPC trailers-only response is one
 * HEADERS frame with END_STREAM, and must reach the client as one).
 */
export interface H2DispatchHandler extends Dispatcher.DispatchHandler {
  onResponseStart?(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string, endOfStream?: boolean): void;
}

export interface H2UpstreamOptions {
  /** `ip:port` of the host. */
  readonly host: string;
  readonly connectTimeoutMs: number;
  readonly tls: UpstreamTls | undefined;
  readonly settings: Http2Settings;
}

/** Errors as the router classifies them: the socket's code (ECONNREFUSED, ...) or undici's connect timeout. */
class ConnectTimeoutError extends Error {
  override name = 'ConnectTimeoutError';
  readonly code = 'UND_ERR_CONNECT_TIMEOUT';
}

class StreamResetError extends Error {
  override name = 'StreamResetError';
  readonly code = 'ECONNRESET';
}

const FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

function requestHeaders(opts: H2DispatchOptions, defaultAuthority: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': opts.method, ':path': opts.path, ':authority': defaultAuthority };
  const add = (k: string, v: string): void => {
    const name = k.toLowerCase();
    if (name === 'host') {
      out[':authority'] = v;
      return;
    }
    if (FORBIDDEN.has(name) || name.startsWith(':')) return;
    if (name === 'te' && v !== 'trailers') return;
    const prev = out[name];
    out[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  };
  const h = opts.headers;
  if (Array.isArray(h)) for (let i = 0; i + 1 < h.length; i += 2) add(h[i]!, h[i + 1]!);
  else if (h) for (const [k, v] of Object.entries(h as Record<string, string | string[] | undefined>)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) add(k, x);
  }
  if (opts.method === 'CONNECT') throw new Error('CONNECT is not supported upstream');
  return out;
}

function plainHeaders(h: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v as string | string[] | undefined;
  return out;
}

/** The controller a DispatchHandler drives: abort resets the stream, pause/resume apply backpressure. */
class StreamController implements Dispatcher.DispatchController {
  private abortReason: Error | null = null;
  private isPaused = false;
  stream: ClientHttp2Stream | undefined;

  constructor(private readonly onAbort: (reason: Error) => void) {}

  get aborted(): boolean {
    return this.abortReason !== null;
  }
  get paused(): boolean {
    return this.isPaused;
  }
  get reason(): Error | null {
    return this.abortReason;
  }
  abort(reason: Error): void {
    if (this.abortReason) return;
    this.abortReason = reason;
    this.onAbort(reason);
  }
  pause(): void {
    this.isPaused = true;
    this.stream?.pause();
  }
  resume(): void {
    this.isPaused = false;
    this.stream?.resume();
  }
}

export class Http2Upstream {
  private session: ClientHttp2Session | undefined;
  private closed = false;
  private readonly sessions = new Set<ClientHttp2Session>();
  /** The streams of each session, failed together when the session errors (one listener per session). */
  private readonly streamFailures = new WeakMap<ClientHttp2Session, Set<(err: Error) => void>>();

  constructor(private readonly options: H2UpstreamOptions) {}

  private connect(): ClientHttp2Session {
    const { host, tls, connectTimeoutMs, settings } = this.options;
    const [hostname, portText] = splitHostPort(host);
    const port = Number(portText);
    const session = h2connect(`${tls ? 'https' : 'http'}://${host}`, {
      settings: { initialWindowSize: settings.initialWindowSize, enablePush: false },
      createConnection: (): Socket => tls
        ? tlsConnect({
          host: hostname, port, ALPNProtocols: ['h2'], ...upstreamTlsConnectOptions(tls),
        })
        : netConnect({ host: hostname, port }),
    });
    const timer = connectTimeoutMs > 0
      ? setTimeout(() => session.destroy(new ConnectTimeoutError(`connect timeout after ${connectTimeoutMs}ms`)), connectTimeoutMs)
      : undefined;
    session.once('connect', () => { if (timer) clearTimeout(timer); });
    const failures = new Set<(err: Error) => void>();
    this.streamFailures.set(session, failures);
    // A session that fails before or while its streams run: the socket's error (ECONNREFUSED, TLS, ...).
    session.on('error', (err: Error) => {
      for (const f of [...failures]) f(err);
    });
    const forget = () => {
      if (timer) clearTimeout(timer);
      this.sessions.delete(session);
      if (this.session === session) this.session = undefined;
    };
    session.once('close', forget);
    session.once('goaway', forget);
    this.sessions.add(session);
    return session;
  }

  dispatch(opts: H2DispatchOptions, handler: H2DispatchHandler): boolean {
    let stream: ClientHttp2Stream | undefined;
    let done = false;
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      if (stream && !stream.destroyed) stream.close(h2constants.NGHTTP2_CANCEL);
      handler.onResponseError?.(controller, err);
    };
    const controller = new StreamController((reason) => fail(reason));
    handler.onRequestStart?.(controller, {});
    if (controller.aborted || done) return true;
    if (this.closed) {
      fail(new Error('upstream pool is closed'));
      return true;
    }
    this.session ??= this.connect();
    const session = this.session;
    let headers: OutgoingHttpHeaders;
    try {
      headers = requestHeaders(opts, this.options.host);
    } catch (err) {
      fail(err as Error);
      return true;
    }
    const body = opts.body ?? null;
    const hasBody = body !== null && !(typeof body === 'string' && body.length === 0) && !(Buffer.isBuffer(body) && body.length === 0);
    const wantsTrailers = opts.trailers !== undefined;
    try {
      stream = session.request(headers, { endStream: !hasBody && !wantsTrailers, waitForTrailers: wantsTrailers });
    } catch (err) {
      fail(err as Error);
      return true;
    }
    controller.stream = stream;
    if (controller.paused) stream.pause();
    const failures = this.streamFailures.get(session);
    failures?.add(fail);
    stream.once('close', () => failures?.delete(fail));
    if (wantsTrailers) {
      stream.once('wantTrailers', () => {
        const t: OutgoingHttpHeaders = {};
        for (const [k, v] of opts.trailers?.() ?? []) if (!k.startsWith(':')) t[k] = t[k] === undefined ? v : `${String(t[k])},${v}`;
        if (!stream!.destroyed) stream!.sendTrailers(t);
      });
    }
    let trailers: Record<string, string | string[] | undefined> = {};
    let started = false;
    stream.on('response', (h: IncomingHttpHeaders, flags: number) => {
      if (done) return;
      const status = Number(h[':status']);
      if (status < 200) return;
      started = true;
      handler.onResponseStart?.(controller, status, plainHeaders(h), '', (flags & h2constants.NGHTTP2_FLAG_END_STREAM) !== 0);
    });
    stream.on('trailers', (h: IncomingHttpHeaders) => { trailers = plainHeaders(h); });
    stream.on('data', (chunk: Buffer) => {
      if (!done) handler.onResponseData?.(controller, chunk);
    });
    stream.on('end', () => {
      if (done) return;
      if (!started) {
        fail(new StreamResetError('upstream stream ended without response headers'));
        return;
      }
      // node:http2 may emit 'trailers' on a later tick than 'end' (the race that loses undici's trailers):
      // complete after the ticks of this turn have run.
      setImmediate(() => {
        if (done) return;
        done = true;
        handler.onResponseEnd?.(controller, trailers as never);
      });
    });
    // A stream cancelled because its session failed carries the session's error as its cause (the connect
    // error the router classifies).
    stream.on('error', (err: Error & { code?: string; cause?: unknown }) => fail(err.code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error ? err.cause : err));
    stream.on('close', () => {
      if (done || stream!.readableEnded) return;
      // Closed without 'end': a reset (RST_STREAM) or the session went away.
      fail(new StreamResetError(`upstream stream reset (code ${stream!.rstCode ?? 'unknown'})`));
    });
    if (hasBody) {
      if (typeof body === 'string' || Buffer.isBuffer(body)) stream.end(body);
      else {
        const readable = body as Readable;
        readable.on('error', (err) => fail(err));
        readable.pipe(stream);
      }
    } else if (wantsTrailers) {
      stream.end();
    }
    return true;
  }

  /** No new streams; open ones finish (GOAWAY). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.sessions].map((s) => new Promise<void>((resolve) => {
      if (s.closed || s.destroyed) resolve();
      else s.close(() => resolve());
    })));
  }

  async destroy(): Promise<void> {
    this.closed = true;
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}

function splitHostPort(hostPort: string): [string, string] {
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    return [hostPort.slice(1, end), hostPort.slice(end + 2)];
  }
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), hostPort.slice(i + 1)];
}
