import { WasmResult } from '../abi/enums';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import type { SharedDataService, SharedDataStore } from '../services/shared-data';
import type { SharedQueueRegistry, SharedQueueService } from '../services/shared-queue';

/**
 * A synchronous mailbox from one worker to the main thread, for shared data and shared queues (host functions
 * are synchronous, so a worker must get its answer before the guest call returns).
 *
 * One SharedArrayBuffer per worker: a control header of Int32 words and a data area. The worker writes a
 * request into the data area, bumps REQ_SEQ and notifies it, then blocks in Atomics.wait on RESP_SEQ. The main
 * thread waits on REQ_SEQ with Atomics.waitAsync (no postMessage per call), runs the request against the one
 * SharedDataStore / SharedQueueRegistry, writes the answer, stores RESP_SEQ and notifies. Only one request per
 * worker is ever in flight (the worker is blocked), so the data area is used for the request and then the answer.
 */

const REQ_SEQ = 0;
const RESP_SEQ = 1;
const LENGTH = 2;
const HEADER_BYTES = 16;
/** Data area: 1 MiB for a value plus room for the vm_id, key and field lengths. */
export const MAILBOX_DATA_BYTES = 1024 * 1024 + 64 * 1024;
/** The largest shared-data value or queue item that crosses a mailbox. */
export const MAILBOX_MAX_VALUE_BYTES = 1024 * 1024;

export function createMailboxBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + MAILBOX_DATA_BYTES);
}

const enum Op {
  DataGet = 1,
  DataSet = 2,
  QueueRegister = 3,
  QueueResolve = 4,
  QueueEnqueue = 5,
  QueueDequeue = 6,
}

/** Fields are u32 numbers or length-prefixed byte strings, written back to back. */
class Writer {
  private off = 0;
  constructor(private readonly bytes: Uint8Array, private readonly view: DataView) {}

  u32(n: number): this {
    this.view.setUint32(this.off, n >>> 0, true);
    this.off += 4;
    return this;
  }

  str(s: string): this {
    const n = Buffer.byteLength(s);
    this.u32(n);
    Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.off, n).write(s, 'utf8');
    this.off += n;
    return this;
  }

  buf(b: Uint8Array): this {
    this.u32(b.length);
    this.bytes.set(b, this.off);
    this.off += b.length;
    return this;
  }

  get length(): number {
    return this.off;
  }
}

class Reader {
  private off = 0;
  constructor(private readonly bytes: Uint8Array, private readonly view: DataView) {}

  u32(): number {
    const n = this.view.getUint32(this.off, true);
    this.off += 4;
    return n;
  }

  str(): string {
    const n = this.u32();
    const s = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + this.off, n).toString('utf8');
    this.off += n;
    return s;
  }

  /** A copy: the data area is reused by the next call. */
  buf(): Buffer {
    const n = this.u32();
    const b = Buffer.from(this.bytes.subarray(this.off, this.off + n));
    this.off += n;
    return b;
  }
}

interface Views {
  readonly ctrl: Int32Array;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

function views(sab: SharedArrayBuffer): Views {
  return {
    ctrl: new Int32Array(sab, 0, HEADER_BYTES / 4),
    bytes: new Uint8Array(sab, HEADER_BYTES, MAILBOX_DATA_BYTES),
    view: new DataView(sab, HEADER_BYTES, MAILBOX_DATA_BYTES),
  };
}

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t?: number): WaitAsyncResult }).waitAsync;

/** Posts a queue wake-up (proxy_on_queue_ready) to the worker that registered it. */
export type QueueReadyPoster = (token: number, queueId: number) => void;

/**
 * The main-thread end of one worker's mailbox: answers requests against the one store and registry. The
 * answer is written synchronously in the waitAsync continuation, so a worker waits one event-loop turn.
 */
export class MailboxServer {
  private readonly v: Views;
  private readonly registrations = new Map<number, Disposable>();
  private nextToken = 1;
  private closed = false;
  private served = 0;

  constructor(
    sab: SharedArrayBuffer,
    private readonly data: SharedDataStore,
    private readonly queues: SharedQueueRegistry,
    private readonly postQueueReady: QueueReadyPoster,
    private readonly logger: Logger,
  ) {
    this.v = views(sab);
    void this.loop();
  }

  /** Requests answered so far. */
  get requests(): number {
    return this.served;
  }

  /** The worker disposed a queue registration (proxy_on_queue_ready no longer wanted). */
  unregister(token: number): void {
    this.registrations.get(token)?.dispose();
    this.registrations.delete(token);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.registrations.values()) r.dispose();
    this.registrations.clear();
    Atomics.notify(this.v.ctrl, REQ_SEQ); // wakes the pending waitAsync so the loop ends
  }

  private async loop(): Promise<void> {
    const ctrl = this.v.ctrl;
    let seen = Atomics.load(ctrl, REQ_SEQ);
    while (!this.closed) {
      const r = waitAsync(ctrl, REQ_SEQ, seen);
      if (r.async) await r.value;
      if (this.closed) return;
      const seq = Atomics.load(ctrl, REQ_SEQ);
      if (seq === seen) continue;
      seen = seq;
      let length: number;
      try {
        length = this.handle();
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'shared state mailbox request failed');
        length = new Writer(this.v.bytes, this.v.view).u32(WasmResult.InternalFailure).length;
      }
      this.served++;
      Atomics.store(ctrl, LENGTH, length);
      Atomics.store(ctrl, RESP_SEQ, seq);
      Atomics.notify(ctrl, RESP_SEQ);
    }
  }

  /** Decodes the request, runs it, writes the answer; returns the answer's length. */
  private handle(): number {
    const r = new Reader(this.v.bytes, this.v.view);
    const op = r.u32() as Op;
    let out: Writer;
    const w = (): Writer => new Writer(this.v.bytes, this.v.view);
    switch (op) {
      case Op.DataGet: {
        const vmId = r.str();
        const key = r.str();
        const e = this.data.get(vmId, key);
        // A value another writer stored may be too big to send back (never through a mailbox, but a
        // single-process caller could); refuse rather than overrun.
        if (e && e.value.length > MAILBOX_MAX_VALUE_BYTES) out = w().u32(WasmResult.BadArgument);
        else out = e ? w().u32(WasmResult.Ok).u32(e.cas).buf(e.value) : w().u32(WasmResult.NotFound);
        break;
      }
      case Op.DataSet: {
        const vmId = r.str();
        const key = r.str();
        const value = r.buf();
        const cas = r.u32();
        out = w().u32(this.data.set(vmId, key, value, cas));
        break;
      }
      case Op.QueueRegister: {
        const vmId = r.str();
        const name = r.str();
        const token = this.nextToken++;
        const { id, registration } = this.queues.register(vmId, name, (queueId) => this.postQueueReady(token, queueId));
        this.registrations.set(token, registration);
        out = w().u32(WasmResult.Ok).u32(id).u32(token);
        break;
      }
      case Op.QueueResolve: {
        const vmId = r.str();
        const name = r.str();
        const id = this.queues.resolve(vmId, name);
        out = id === undefined ? w().u32(WasmResult.NotFound) : w().u32(WasmResult.Ok).u32(id);
        break;
      }
      case Op.QueueEnqueue: {
        const id = r.u32();
        const value = r.buf();
        out = w().u32(this.queues.enqueue(id, value) ? WasmResult.Ok : WasmResult.NotFound);
        break;
      }
      case Op.QueueDequeue: {
        const item = this.queues.dequeue(r.u32());
        if (item === undefined) out = w().u32(WasmResult.NotFound);
        else if (item === null) out = w().u32(WasmResult.Empty);
        else out = w().u32(WasmResult.Ok).buf(item);
        break;
      }
      default:
        out = w().u32(WasmResult.BadArgument);
    }
    return out.length;
  }
}

export interface MailboxClientOptions {
  readonly logger: Logger;
  /** How long a worker blocks for an answer before it reports InternalFailure. Default 10 s. */
  readonly timeoutMs?: number;
}

/**
 * The worker end: SharedDataService and SharedQueueService over the mailbox. Calls block the worker thread
 * (Atomics.wait) for one main-thread event-loop turn. Values over MAILBOX_MAX_VALUE_BYTES are refused with
 * BadArgument (set) or false (enqueue) and a warning, without a round trip.
 */
export class MailboxClient implements SharedDataService, SharedQueueService {
  private readonly v: Views;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  /** Local wake-ups by registration token; the main thread posts (token, queueId). */
  private readonly wakeups = new Map<number, (queueId: number) => void>();

  constructor(sab: SharedArrayBuffer, options: MailboxClientOptions, private readonly unregister: (token: number) => void) {
    this.v = views(sab);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.logger = options.logger.child({ component: 'shared_state' });
  }

  /** Called from the worker's message handler (a later tick than the enqueue, as the in-process registry does). */
  queueReady(token: number, queueId: number): void {
    this.wakeups.get(token)?.(queueId);
  }

  get(vmId: string, key: string): { value: Buffer; cas: number } | undefined {
    if (!this.fits(vmId, key, 0)) return undefined;
    const r = this.call((w) => w.u32(Op.DataGet).str(vmId).str(key));
    if (!r) return undefined;
    const status = r.u32();
    if (status !== WasmResult.Ok) {
      if (status !== WasmResult.NotFound) this.logger.warn({ vmId, status }, 'shared data get failed');
      return undefined;
    }
    const cas = r.u32();
    return { cas, value: r.buf() };
  }

  set(vmId: string, key: string, value: Buffer, cas: number): WasmResult {
    if (!this.fits(vmId, key, value.length)) return WasmResult.BadArgument;
    const r = this.call((w) => w.u32(Op.DataSet).str(vmId).str(key).buf(value).u32(cas));
    return r ? (r.u32() as WasmResult) : WasmResult.InternalFailure;
  }

  register(vmId: string, name: string, onReady: (queueId: number) => void): { id: number; registration: Disposable } {
    const r = this.call((w) => w.u32(Op.QueueRegister).str(vmId).str(name));
    if (!r || r.u32() !== WasmResult.Ok) {
      // The interface has no failure path; id 0 is never a valid queue, so later enqueues report NotFound.
      return { id: 0, registration: { dispose: () => undefined } };
    }
    const id = r.u32();
    const token = r.u32();
    this.wakeups.set(token, onReady);
    return {
      id,
      registration: {
        dispose: () => {
          if (this.wakeups.delete(token)) this.unregister(token);
        },
      },
    };
  }

  resolve(vmId: string, name: string): number | undefined {
    const r = this.call((w) => w.u32(Op.QueueResolve).str(vmId).str(name));
    if (!r || r.u32() !== WasmResult.Ok) return undefined;
    return r.u32();
  }

  enqueue(id: number, value: Buffer): boolean {
    if (value.length > MAILBOX_MAX_VALUE_BYTES) {
      this.logger.warn({ queueId: id, bytes: value.length, limit: MAILBOX_MAX_VALUE_BYTES }, 'shared queue item too large for the worker mailbox; refused');
      return false;
    }
    const r = this.call((w) => w.u32(Op.QueueEnqueue).u32(id).buf(value));
    return r ? r.u32() === WasmResult.Ok : false;
  }

  dequeue(id: number): Buffer | null | undefined {
    const r = this.call((w) => w.u32(Op.QueueDequeue).u32(id));
    if (!r) return undefined;
    const status = r.u32();
    if (status === WasmResult.Ok) return r.buf();
    return status === WasmResult.Empty ? null : undefined;
  }

  private fits(vmId: string, key: string, valueBytes: number): boolean {
    if (valueBytes <= MAILBOX_MAX_VALUE_BYTES && Buffer.byteLength(vmId) + Buffer.byteLength(key) + valueBytes + 32 <= MAILBOX_DATA_BYTES) return true;
    this.logger.warn({ vmId, bytes: valueBytes, limit: MAILBOX_MAX_VALUE_BYTES }, 'shared data value too large for the worker mailbox; refused');
    return false;
  }

  /** One blocking round trip; undefined when the main thread did not answer in time. */
  private call(write: (w: Writer) => Writer): Reader | undefined {
    const { ctrl, bytes, view } = this.v;
    write(new Writer(bytes, view));
    const seq = (Atomics.load(ctrl, REQ_SEQ) + 1) | 0;
    Atomics.store(ctrl, REQ_SEQ, seq);
    Atomics.notify(ctrl, REQ_SEQ);
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const current = Atomics.load(ctrl, RESP_SEQ);
      if (current === seq) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.logger.error({ timeoutMs: this.timeoutMs }, 'main thread did not answer a shared state request');
        return undefined;
      }
      Atomics.wait(ctrl, RESP_SEQ, current, left);
    }
    return new Reader(bytes, view);
  }
}
