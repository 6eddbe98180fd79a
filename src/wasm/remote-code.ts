import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JitteredBackoff } from '../common/backoff';
import { ClientClosedError, ConfigError, SidecarError } from '../common/errors';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { HttpCalloutResponse, HttpCalloutService } from '../services/http-callout';
import type { ProtoObject } from '../xds/proto-json';
import { protoLib } from '../xds/proto-lib';
import type { ProtoValidator } from '../xds/validate';

/**
 * Wasm code by URL: `vm_config.code.remote` (envoy.config.core.v3.RemoteDataSource), fetched as Envoy's
 * RemoteAsyncDataProvider and RemoteDataFetcher do (checked against Envoy 1.40): a GET through the named cluster's
 * async client with the URI's host as :authority, `http_uri.timeout` per attempt, any failure (connect error,
 * timeout, non-200, empty body, sha256 mismatch) retried `retry_policy.num_retries` times (default 1) after a
 * jittered exponential backoff (default 1 s base, 10 s max). Envoy keeps fetched code in memory by sha256 (its
 * Wasm code cache); here it is also kept on disk by sha256 so a restart does not depend on the server, and a
 * cached file is re-hashed before every use.
 */

const REMOTE_DATA_SOURCE = 'envoy.config.core.v3.RemoteDataSource';
/** Envoy's remote_async_datasource.cc defaults. */
const DEFAULT_NUM_RETRIES = 1;
const DEFAULT_BASE_INTERVAL_MS = 1000;
const DEFAULT_MAX_INTERVAL_MS = 10_000;
/** Envoy compares the lowercase hex SHA-256 of the body with `sha256` verbatim, so nothing else can ever match. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface RemoteWasmRetry {
  /** Retries after the first attempt (Envoy: `retry_policy.num_retries`, default 1). */
  readonly numRetries: number;
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
}

export interface RemoteWasmCode {
  readonly cluster: string;
  readonly uri: string;
  /** Sent as :authority (Envoy's Http::Utility::extractHostPathFromUri). */
  readonly authority: string;
  readonly path: string;
  /** Per attempt; 0 means none (as an AsyncClient request without a timeout). */
  readonly timeoutMs: number;
  /** Lowercase hex SHA-256 of the module. */
  readonly sha256: string;
  readonly retry: RemoteWasmRetry;
}

/** A remote fetch that failed (every attempt, when thrown by fetchRemoteWasmCode). */
export class RemoteCodeError extends SidecarError {
  override name = 'RemoteCodeError';
  override readonly code: string = 'PWS_ERR_REMOTE_CODE';
  constructor(
    message: string,
    readonly uri: string,
    /** Attempts made so far, this one included. */
    readonly attempts: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The body's SHA-256 is not the configured one: Envoy's FailureReason::InvalidData. */
export class RemoteCodeHashMismatchError extends RemoteCodeError {
  override name = 'RemoteCodeHashMismatchError';
  override readonly code: string = 'PWS_ERR_REMOTE_CODE_SHA256';
  constructor(uri: string, attempts: number, readonly expected: string, readonly actual: string) {
    super(`sha256 mismatch for ${uri}: expected ${expected}, got ${actual}`, uri, attempts);
  }
}

let validator: ProtoValidator | undefined; // stateless once built; the proto registry is process-wide

function num(v: unknown): number {
  return typeof v === 'object' && v !== null ? Number((v as { toString(): string }).toString()) : Number(v ?? 0);
}

function durationMs(d: unknown): number | undefined {
  if (d === undefined || d === null) return undefined;
  const o = d as { seconds?: unknown; nanos?: unknown };
  return num(o.seconds) * 1000 + Math.round(num(o.nanos) / 1e6);
}

/** Envoy's Http::Utility::extractHostPathFromUri: host up to the first `/` after `://`, the rest (or `/`) the path. */
function hostAndPath(uri: string): { authority: string; path: string } {
  const scheme = uri.indexOf('://');
  const rest = scheme === -1 ? uri : uri.slice(scheme + 3);
  const slash = rest.indexOf('/');
  return slash === -1 ? { authority: rest, path: '/' } : { authority: rest.slice(0, slash), path: rest.slice(slash) };
}

/**
 * `vm_config.code.remote` (proto3 JSON) → RemoteWasmCode. Strict: unknown fields, the protos' validate.rules
 * (sha256 and http_uri.timeout are required, base_interval > 1 ms, ...), Envoy's own backoff check
 * (max_interval >= base_interval) and retry_policy fields the remote data provider does not act on are
 * ConfigErrors naming `<path>.<field>`.
 */
export function parseRemoteWasmCode(remote: unknown, path: string): RemoteWasmCode {
  const lib = protoLib();
  const protos = lib.protos.loadEnvoyProtos();
  const type = protos.lookup(REMOTE_DATA_SOURCE);
  if (!type) throw new ConfigError(`${REMOTE_DATA_SOURCE} is missing from the loaded protos`, path);
  if (typeof remote !== 'object' || remote === null || Array.isArray(remote)) throw new ConfigError('must be an object', path);
  const msg: ProtoObject = lib.json.fromProtoJson(protos, type, remote, path);
  validator ??= new lib.validate.ProtoValidator(protos);
  const violation = validator.validate(type, msg, path)[0];
  // HttpUri's only http_upstream_type is `cluster`: name the field an author has to add.
  if (violation?.path === `${path}.http_uri.http_upstream_type`) throw new ConfigError('is required', `${path}.http_uri.cluster`);
  if (violation) throw new ConfigError(violation.message, violation.path);
  const httpUri = msg['http_uri'] as ProtoObject;
  const sha256 = String(msg['sha256']);
  if (!SHA256_HEX.test(sha256)) throw new ConfigError('must be 64 lowercase hex digits (the hex SHA-256 Envoy compares with)', `${path}.sha256`);
  const uri = String(httpUri['uri']);
  const { authority, path: uriPath } = hostAndPath(uri);
  if (authority === '') throw new ConfigError(`has no host (expected e.g. http://host/plugin.wasm)`, `${path}.http_uri.uri`);
  const retryPolicy = msg['retry_policy'] as ProtoObject | undefined;
  let retry: RemoteWasmRetry = { numRetries: DEFAULT_NUM_RETRIES, baseIntervalMs: DEFAULT_BASE_INTERVAL_MS, maxIntervalMs: DEFAULT_MAX_INTERVAL_MS };
  if (retryPolicy) {
    const rpath = `${path}.retry_policy`;
    // RemoteAsyncDataProvider reads only retry_back_off and num_retries; the rest would be accepted and unused.
    for (const f of ['retry_on', 'retry_priority', 'retry_host_predicate', 'host_selection_retry_max_attempts']) {
      const v = retryPolicy[f];
      if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0) && v !== '' && num(v) !== 0) {
        throw new ConfigError('is not used for remote Wasm code and is not supported', `${rpath}.${f}`);
      }
    }
    const wrapped = retryPolicy['num_retries'] as ProtoObject | undefined;
    const numRetries = wrapped ? num(wrapped['value']) : DEFAULT_NUM_RETRIES;
    const backOff = retryPolicy['retry_back_off'] as ProtoObject | undefined;
    let baseIntervalMs = DEFAULT_BASE_INTERVAL_MS;
    let maxIntervalMs = DEFAULT_MAX_INTERVAL_MS;
    if (backOff) {
      baseIntervalMs = durationMs(backOff['base_interval']) ?? DEFAULT_BASE_INTERVAL_MS;
      // Envoy's prepareJitteredExponentialBackOffStrategy: max defaults to 10 x base and may not be below it.
      maxIntervalMs = durationMs(backOff['max_interval']) ?? baseIntervalMs * 10;
      if (maxIntervalMs < baseIntervalMs) {
        throw new ConfigError('must be greater than or equal to the base_interval', `${rpath}.retry_back_off.max_interval`);
      }
    }
    retry = { numRetries, baseIntervalMs, maxIntervalMs };
  }
  return {
    cluster: String(httpUri['cluster']),
    uri,
    authority,
    path: uriPath,
    timeoutMs: durationMs(httpUri['timeout']) ?? 0,
    sha256,
    retry,
  };
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Where fetched modules are kept unless configured: per user, outside the repository. */
export function defaultRemoteCodeCacheDir(): string {
  return path.join(tmpdir(), 'proxy-wasm-sidecar', 'wasm-code');
}

export interface RemoteCodeCacheOptions {
  /** Directory of `<sha256>.wasm` files; created on first write. */
  readonly dir?: string;
  readonly logger?: Logger;
}

/** What the cache did, for /stats-like views and tests. */
export interface RemoteCodeCacheStats {
  readonly fetches: number;
  readonly memoryHits: number;
  readonly diskHits: number;
  readonly corruptFiles: number;
}

/**
 * Fetched modules by sha256: in memory (a second plugin with the same sha256 shares the bytes and any fetch in
 * flight) and on disk. One per process; close() cancels fetches in flight and their retry timers.
 */
export class RemoteCodeCache {
  readonly dir: string;
  private readonly logger: Logger;
  private readonly memory = new Map<string, Buffer>();
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly aborter = new AbortController();
  private counts = { fetches: 0, memoryHits: 0, diskHits: 0, corruptFiles: 0 };

  constructor(options: RemoteCodeCacheOptions = {}) {
    this.dir = options.dir ?? defaultRemoteCodeCacheDir();
    this.logger = (options.logger ?? silentLogger()).child({ component: 'remote_wasm_code' });
  }

  get stats(): RemoteCodeCacheStats {
    return { ...this.counts };
  }

  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /** Path of the cached file for a sha256. */
  fileFor(sha256: string): string {
    return path.join(this.dir, `${sha256}.wasm`);
  }

  /** The module for `code`: memory, then disk (re-verified), then the network. Concurrent callers share one fetch. */
  get(code: RemoteWasmCode, fetchBytes: () => Promise<Buffer>): Promise<Buffer> {
    if (this.aborter.signal.aborted) return Promise.reject(new ClientClosedError('remote code cache closed'));
    const hit = this.memory.get(code.sha256);
    if (hit) {
      this.counts.memoryHits++;
      return Promise.resolve(hit);
    }
    const pending = this.inflight.get(code.sha256);
    if (pending) {
      this.counts.memoryHits++;
      return pending;
    }
    const p = this.load(code, fetchBytes).finally(() => this.inflight.delete(code.sha256));
    this.inflight.set(code.sha256, p);
    return p;
  }

  private async load(code: RemoteWasmCode, fetchBytes: () => Promise<Buffer>): Promise<Buffer> {
    const file = this.fileFor(code.sha256);
    const cached = await readFile(file).catch(() => undefined);
    if (cached) {
      const actual = sha256Hex(cached);
      if (actual === code.sha256) {
        this.counts.diskHits++;
        this.memory.set(code.sha256, cached);
        return cached;
      }
      this.counts.corruptFiles++;
      this.logger.warn({ file, expected: code.sha256, actual }, 'cached Wasm module does not match its sha256; fetching it again');
      await unlink(file).catch(() => undefined);
    }
    this.counts.fetches++;
    const bytes = await fetchBytes();
    this.memory.set(code.sha256, bytes);
    await this.store(file, bytes);
    return bytes;
  }

  /** Write-then-rename, so a reader never sees half a module; a failed write only costs a fetch next time. */
  private async store(file: string, bytes: Buffer): Promise<void> {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, bytes, { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      this.logger.warn({ file, err: String(err) }, 'could not cache the Wasm module on disk');
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Forgets the in-memory copies (the disk cache stays) and cancels fetches in flight. */
  close(): void {
    this.aborter.abort(new ClientClosedError('remote code cache closed'));
    this.memory.clear();
  }
}

export interface RemoteCodeDeps {
  /**
   * Reaches `code.cluster`'s hosts: the sidecar's UndiciHttpCalloutService, i.e. the cluster manager's load
   * balancer and the same upstream pools (TLS from the cluster's transport_socket) as the router, as Envoy's
   * fetcher uses the cluster's async client.
   */
  readonly http: HttpCalloutService;
  readonly cache: RemoteCodeCache;
  readonly logger?: Logger;
  /** The backoff's jitter source (tests). */
  readonly random?: () => number;
}

function statusOf(response: HttpCalloutResponse): number {
  return Number(response.headers.find(([k]) => k === ':status')?.[1] ?? 0);
}

/** One GET through the cluster, resolved with the verified body or rejected with the reason (never both). */
function attempt(code: RemoteWasmCode, http: HttpCalloutService, n: number, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string): void => reject(new RemoteCodeError(`fetching ${code.uri} through cluster ${code.cluster}: ${reason}`, code.uri, n));
    let onAbort: (() => void) | undefined;
    const outcome = http.call(
      {
        cluster: code.cluster,
        headers: [[':method', 'GET'], [':path', code.path], [':authority', code.authority]],
        body: Buffer.alloc(0),
        trailers: [],
        timeoutMs: code.timeoutMs,
      },
      (response) => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        const status = statusOf(response);
        // Envoy's RemoteDataFetcher: only a 200 with a non-empty body whose hash matches is data.
        if (response.headers.length === 0) return fail('the upstream reset the response');
        if (status !== 200) return fail(`response status ${status}${response.body.length > 0 ? ` (${response.body.subarray(0, 200).toString('utf8')})` : ''}`);
        if (response.body.length === 0) return fail('the response body is empty');
        const actual = sha256Hex(response.body);
        if (actual !== code.sha256) return reject(new RemoteCodeHashMismatchError(code.uri, n, code.sha256, actual));
        resolve(response.body);
      },
    );
    switch (outcome.status) {
      case 'ok':
        onAbort = () => {
          outcome.cancel();
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        return;
      case 'unknown_cluster': return fail(`cluster ${code.cluster} is unknown`);
      case 'bad_argument':
      case 'internal_failure': return fail(outcome.reason);
    }
  });
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The module for `code`, from the cache or fetched with Envoy's retries. Rejects with the last attempt's error
 * (a RemoteCodeHashMismatchError names both hashes) once `1 + numRetries` attempts have failed, or with a
 * ClientClosedError when the cache is closed meanwhile.
 */
export function fetchRemoteWasmCode(code: RemoteWasmCode, deps: RemoteCodeDeps): Promise<Buffer> {
  const logger = (deps.logger ?? silentLogger()).child({ component: 'remote_wasm_code' });
  const signal = deps.cache.signal;
  return deps.cache.get(code, async () => {
    const backoff = new JitteredBackoff(code.retry.baseIntervalMs, code.retry.maxIntervalMs, deps.random);
    for (let n = 1; ; n++) {
      try {
        const bytes = await attempt(code, deps.http, n, signal);
        logger.info({ uri: code.uri, cluster: code.cluster, sha256: code.sha256, bytes: bytes.length, attempts: n }, 'fetched remote Wasm code');
        return bytes;
      } catch (err) {
        if (signal.aborted || !(err instanceof RemoteCodeError)) throw err;
        if (n > code.retry.numRetries) {
          logger.warn({ uri: code.uri, attempts: n, err: err.message }, 'retry limit exceeded for remote Wasm code');
          throw err;
        }
        const wait = backoff.nextMs();
        logger.info({ uri: code.uri, attempt: n, retryInMs: wait, err: err.message }, 'remote Wasm code fetch failed; retrying');
        await delay(wait, signal);
      }
    }
  });
}
