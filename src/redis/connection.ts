/**
 * One pipelined raw TCP connection to one Redis endpoint, shaped like Envoy's common/redis client_impl.cc:
 * a FIFO of pending requests, the plugin's query bytes written verbatim, each framed reply handed back as exactly
 * its bytes, cancel() that only marks, and an op timeout that closes the connection and fails everything on it
 * (higress-abi.md §1.7), because once one reply is lost the rest cannot be matched.
 *
 * Batching: Envoy buffers requests until `max_buffer_size_before_flush` bytes (1024) or `buffer_flush_timeout` ms
 * (3 ms). We accept both but flush at the end of the current event-loop iteration (setImmediate), so every request
 * issued while handling one batch of I/O goes out in one write, without a timer's delay: 64 calls issued together
 * are one write. A size of 0 still means "write every request at once". Otherwise the size only caps a batch, at
 * max(size, MIN_BATCH_BYTES), so the 1024 default does not split a burst of small commands.
 *
 * Reconnects: the connection is made on demand, and the request after any close or failed connect starts a new
 * one at once, with no backoff: Envoy drops a failed client and the next send creates another
 * (AsyncClientImpl::ThreadLocalActiveClient::onEvent), so a call made once Redis is back succeeds however many
 * calls failed while it was down. Requests issued while a connect is in progress share it.
 */
import { timerMs } from '../common/limits';
import { connect, type Socket } from 'node:net';
import { ClientClosedError, RedisConnectionError, RedisProtocolError, RedisTimeoutError } from '../common/errors';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { RedisReply } from '../services/redis';
import { RespFramer } from './resp-scanner';

export interface RedisConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** `AUTH <user> <pass>` when non-empty. */
  readonly username: string;
  /** `AUTH <pass>` when non-empty and there is no username. Never logged. */
  readonly password: string;
  /** `SELECT <db>` on each new connection, sent raw; undefined for none. */
  readonly db: string | undefined;
  /** The cluster's connect_timeout. */
  readonly connectTimeoutMs: number;
  /** Per-operation timeout (Higress semantics); 0 disables it. */
  readonly opTimeoutMs: number;
  /** Bytes queued before a write is forced; 0 writes every request at once. Default 1024. */
  readonly maxBufferSizeBeforeFlush?: number;
  /** Accepted for Higress compatibility; we always flush at the end of the current tick (see the file comment). */
  readonly bufferFlushTimeoutMs?: number;
  /** For logs and errors, e.g. the cluster name. */
  readonly label?: string;
  readonly logger?: Logger;
}

export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'closed';

/** A queued request. cancel() only marks it: its reply is still read (to keep the FIFO aligned) and dropped. */
export class PendingRequest {
  private cancelledFlag = false;
  constructor(
    /** null for the connection's own AUTH/SELECT, whose replies are swallowed (and for subclasses overriding complete()). */
    readonly callback: ((reply: RedisReply) => void) | null,
    /** A plugin request (counted in inFlight), not the connection's own AUTH/SELECT. */
    readonly user: boolean = callback !== null,
  ) {}
  get cancelled(): boolean {
    return this.cancelledFlag;
  }
  cancel(): void {
    this.cancelledFlag = true;
  }
  /** Receives the reply or failure (once, never if cancelled). Subclasses override it to avoid a closure per call. */
  complete(reply: RedisReply): void {
    this.callback?.(reply);
  }
}

export const DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH = 1024;
export const DEFAULT_BUFFER_FLUSH_TIMEOUT_MS = 3;
/** A batch is written early once it reaches max(max_buffer_size_before_flush, this). */
export const MIN_BATCH_BYTES = 64 * 1024;
/** Size of each outbox block: queries are copied into it back to back and a batch is written as one slice. */
const OUTBOX_BLOCK_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);

/** A FIFO with O(1) shift. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  unshiftAll(items: T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

export class RedisConnection {
  private readonly opts: RedisConnectionOptions;
  private readonly logger: Logger;
  private readonly maxBuffer: number;
  private readonly label: string;
  private readonly pending = new Fifo<PendingRequest>();
  private socket: Socket | null = null;
  private stateValue: ConnectionState = 'idle';
  /**
   * Queued bytes not yet written: outbox[0, outboxBytes). A flush writes that slice and keeps appending after it
   * in the same block (the written bytes are never touched again), so a call costs one copy and no allocation.
   */
  private outbox: Buffer = EMPTY;
  private outboxBytes = 0;
  private flushScheduled: NodeJS.Immediate | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private opTimer: NodeJS.Timeout | null = null;
  /** Set once the current socket has connected; a close after that is not a connect failure. */
  private established = false;
  /**
   * Set by a failed connect, cleared by a successful one: only the first failure of a run is a warning, since
   * with no backoff a dead server fails one connect per call.
   */
  private connectFailing = false;
  /** The error to fail pending requests with when the socket closes; set by whoever closes it. */
  private closeReason: Error | null = null;
  private closing: Promise<void> | null = null;
  private drainedResolve: (() => void) | null = null;
  private userInFlight = 0;
  private repliesInChunk = 0;

  /** Counters for stats. */
  rqTotal = 0;
  cxTotal = 0;
  cxConnectFail = 0;
  opTimeouts = 0;
  /** socket.write calls (one per flushed batch). */
  writes = 0;

  constructor(opts: RedisConnectionOptions) {
    this.opts = opts;
    this.label = opts.label ?? '';
    // The pool manager's logger already says component: redis; a second binding would repeat the key.
    this.logger = (opts.logger ?? silentLogger()).child({ cluster: this.label, host: this.address });
    const max = opts.maxBufferSizeBeforeFlush ?? DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH;
    const valid = Number.isFinite(max) && max >= 0 ? max : DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH;
    this.maxBuffer = valid === 0 ? 0 : Math.max(valid, MIN_BATCH_BYTES);
  }

  get address(): string {
    const h = this.opts.host;
    return h.includes(':') ? `[${h}]:${this.opts.port}` : `${h}:${this.opts.port}`;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** True while a TCP connection is established. */
  get connected(): boolean {
    return this.stateValue === 'ready';
  }

  /** Plugin requests sent and not yet answered or failed (cancelled ones included: they still hold a slot). */
  get inFlight(): number {
    return this.userInFlight;
  }

  get closed(): boolean {
    return this.closing !== null || this.stateValue === 'closed';
  }

  get destroyed(): boolean {
    return this.stateValue === 'closed';
  }

  /**
   * Queues `query` (one or more complete RESP commands; sent verbatim, copied now) and returns its handle.
   * `callback` gets exactly one reply or failure, never synchronously inside send(); it is skipped if the
   * request was cancelled.
   */
  send(query: Uint8Array, callback: (reply: RedisReply) => void): PendingRequest {
    return this.sendRequest(query, new PendingRequest(callback));
  }

  /** send() with a caller-made request object: its complete() gets the reply (same rules as send's callback). */
  sendRequest<R extends PendingRequest>(query: Uint8Array, req: R): R {
    this.rqTotal++;
    if (this.closing !== null || this.stateValue === 'closed') {
      this.failLater(req, new ClientClosedError(`redis connection to ${this.address} is closed`));
      return req;
    }
    if (this.stateValue === 'idle') this.startConnect();
    // Copy now: the caller's bytes (guest memory) may change before the batch is written.
    this.enqueue(req, query);
    return req;
  }

  /** Stops taking requests, waits for the in-flight ones to finish, then closes. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.stateValue === 'closed') return (this.closing = Promise.resolve());
    this.closing = new Promise<void>((resolve) => {
      this.drainedResolve = resolve;
    }).then(() => this.destroy());
    this.checkDrained();
    return this.closing;
  }

  /** Fails every pending request (with `err`, default ClientClosedError) and closes the socket now. Idempotent. */
  destroy(err?: Error): Promise<void> {
    if (this.stateValue === 'closed') return Promise.resolve();
    this.stateValue = 'closed';
    this.clearTimers();
    this.outbox = EMPTY;
    this.outboxBytes = 0;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
    }
    this.failAll(err ?? new ClientClosedError(`redis connection to ${this.address} destroyed`));
    const resolve = this.drainedResolve;
    this.drainedResolve = null;
    resolve?.();
    return Promise.resolve();
  }

  private enqueue(req: PendingRequest, bytes: Uint8Array): void {
    if (req.user) this.userInFlight++;
    this.pending.push(req);
    this.append(bytes);
    if (this.stateValue !== 'ready') return;
    this.armOpTimer();
    if (this.maxBuffer === 0 || this.outboxBytes >= this.maxBuffer) this.flush();
    else if (!this.flushScheduled) this.flushScheduled = setImmediate(this.flushNow);
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = null;
    this.flush();
  };

  /** Copies `bytes` to the end of the outbox (the caller's bytes, e.g. guest memory, may change afterwards). */
  private append(bytes: Uint8Array): void {
    const n = bytes.length;
    const used = this.outboxBytes;
    if (used + n > this.outbox.length) {
      const next = Buffer.allocUnsafe(Math.max(OUTBOX_BLOCK_BYTES, (used + n) * 2));
      this.outbox.copy(next, 0, 0, used);
      this.outbox = next;
    }
    this.outbox.set(bytes, used);
    this.outboxBytes = used + n;
  }

  private flush(): void {
    if (this.flushScheduled) {
      clearImmediate(this.flushScheduled);
      this.flushScheduled = null;
    }
    const socket = this.socket;
    const n = this.outboxBytes;
    if (!socket || this.stateValue !== 'ready' || n === 0) return;
    const data = this.outbox.subarray(0, n);
    this.outbox = this.outbox.subarray(n);
    this.outboxBytes = 0;
    this.writes++;
    socket.write(data);
  }

  private startConnect(): void {
    this.stateValue = 'connecting';
    this.established = false;
    this.closeReason = null;
    this.cxTotal++;
    const socket = connect({ host: this.opts.host, port: this.opts.port, noDelay: true });
    const framer = new RespFramer();
    this.socket = socket;
    const init = this.initCommands();
    if (init.length > 0) {
      // Nothing has been written on this socket yet, so the handshake goes ahead of queued requests.
      this.pending.unshiftAll(init.map(() => new PendingRequest(null)));
      const queued = this.outbox.subarray(0, this.outboxBytes);
      const head = Buffer.concat(init);
      this.outbox = Buffer.concat([head, queued]);
      this.outboxBytes = this.outbox.length;
    }
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      this.teardown(
        socket,
        new RedisConnectionError(`redis ${this.address}: connect timeout after ${this.opts.connectTimeoutMs} ms`),
      );
    }, this.opts.connectTimeoutMs);
    this.connectTimer.unref();
    const onReply = (bytes: Buffer): void => this.onReply(socket, bytes);
    socket.on('connect', () => this.onConnect(socket));
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.socket) return;
      try {
        this.repliesInChunk = 0;
        framer.push(chunk, onReply);
        // Re-arm the op timer once per chunk rather than per reply: same deadline, far fewer timer updates.
        if (this.repliesInChunk > 0 && socket === this.socket) {
          if (this.pending.length > 0) this.opTimer?.refresh();
          else this.disarmOpTimer();
        }
      } catch (err) {
        if (!(err instanceof RedisProtocolError)) throw err;
        this.logger.warn({ err: err.message }, 'protocol error; closing connection');
        this.teardown(socket, err);
      }
    });
    socket.on('error', (err: Error) => {
      this.closeReason ??= new RedisConnectionError(`redis ${this.address}: ${err.message}`, { cause: err });
    });
    socket.on('close', () => {
      this.teardown(
        socket,
        this.closeReason ?? new RedisConnectionError(`redis ${this.address}: connection closed by the server`),
      );
    });
  }

  private initCommands(): Buffer[] {
    const { username, password, db } = this.opts;
    const out: Buffer[] = [];
    if (username !== '') out.push(encodeCommand(['AUTH', username, password]));
    else if (password !== '') out.push(encodeCommand(['AUTH', password]));
    if (db !== undefined && db !== '') out.push(encodeCommand(['SELECT', db]));
    return out;
  }

  private onConnect(socket: Socket): void {
    if (socket !== this.socket) return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.established = true;
    this.connectFailing = false;
    this.stateValue = 'ready';
    this.logger.debug('connected');
    if (this.pending.length > 0) this.armOpTimer();
    this.flush();
  }

  private onReply(socket: Socket, bytes: Buffer): void {
    // A callback earlier in the same chunk may have torn this socket down; its remaining replies are stale.
    if (socket !== this.socket) return;
    const req = this.pending.shift();
    if (!req) {
      this.teardown(socket, new RedisProtocolError(`redis ${this.address}: reply with no request`));
      return;
    }
    this.repliesInChunk++;
    if (req.user) {
      this.userInFlight--;
      if (!req.cancelled) this.deliver(req, { ok: true, bytes });
    }
    this.checkDrained();
  }

  /**
   * Closes `socket` (if it is still ours) and fails everything pending on it with `reason`. Runs synchronously,
   * so a request sent right after is queued for a fresh connection, never on the dying one.
   */
  private teardown(socket: Socket, reason: Error): void {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.removeAllListeners();
    socket.on('error', () => {});
    socket.destroy();
    this.clearTimers();
    this.closeReason = null;
    if (this.stateValue !== 'closed') this.stateValue = 'idle';
    if (this.established) {
      this.logger.debug({ err: reason.message }, 'connection closed');
    } else {
      this.cxConnectFail++;
      this.logger[this.connectFailing ? 'debug' : 'warn']({ err: reason.message, cxConnectFail: this.cxConnectFail }, 'connect failed');
      this.connectFailing = true;
    }
    this.established = false;
    this.outbox = EMPTY;
    this.outboxBytes = 0;
    this.failAll(reason);
    this.checkDrained();
  }

  private failAll(err: Error): void {
    const reqs = this.pending.drain();
    this.userInFlight = 0;
    for (const req of reqs) if (req.user && !req.cancelled) this.deliver(req, { ok: false, error: err });
  }

  private deliver(req: PendingRequest, reply: RedisReply): void {
    try {
      req.complete(reply);
    } catch (cbErr) {
      this.logger.error({ err: String(cbErr) }, 'redis reply callback threw');
    }
  }

  private failLater(req: PendingRequest, err: Error): void {
    process.nextTick(() => {
      if (!req.cancelled) this.deliver(req, { ok: false, error: err });
    });
  }

  private armOpTimer(): void {
    if (this.opts.opTimeoutMs <= 0 || this.opTimer || this.stateValue !== 'ready') return;
    this.opTimer = setTimeout(this.onOpTimeout, timerMs(this.opts.opTimeoutMs));
    this.opTimer.unref();
  }

  private disarmOpTimer(): void {
    if (this.opTimer) clearTimeout(this.opTimer);
    this.opTimer = null;
  }

  private readonly onOpTimeout = (): void => {
    this.opTimer = null;
    const socket = this.socket;
    if (!socket || this.pending.length === 0) return;
    this.opTimeouts++;
    this.logger.warn({ timeoutMs: this.opts.opTimeoutMs, inFlight: this.pending.length }, 'op timeout; closing connection');
    this.teardown(socket, new RedisTimeoutError(`redis ${this.address}: no reply within ${this.opts.opTimeoutMs} ms`));
  };

  private clearTimers(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.disarmOpTimer();
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
  }

  private checkDrained(): void {
    if (this.closing !== null && this.pending.length === 0 && this.drainedResolve) {
      const resolve = this.drainedResolve;
      this.drainedResolve = null;
      resolve();
    }
  }
}

/** Encodes a command as a RESP array of bulk strings (used only for the connection's own AUTH/SELECT). */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const b = Buffer.from(arg, 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}
