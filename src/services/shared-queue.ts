import type { Disposable } from '../common/disposable';

interface Queue {
  readonly id: number;
  readonly vmId: string;
  readonly name: string;
  readonly items: Buffer[];
  /** The registering root context's wake-up (proxy_on_queue_ready), delivered on a later tick. */
  onReady: ((queueId: number) => void) | undefined;
}

/**
 * What host functions need from shared queues. `SharedQueueRegistry` is the in-process registry; with
 * `--concurrency N` workers reach the one registry in the main thread through a synchronous mailbox.
 */
export interface SharedQueueService {
  /** Registers (or re-opens) queue (vmId, name); `onReady` runs on a later tick after each enqueue. */
  register(vmId: string, name: string, onReady: (queueId: number) => void): { id: number; registration: Disposable };
  resolve(vmId: string, name: string): number | undefined;
  enqueue(id: number, value: Buffer): boolean;
  /** undefined: unknown queue; null: empty. */
  dequeue(id: number): Buffer | null | undefined;
}

/**
 * Proxy-Wasm shared queues: registered by (vm_id, name), resolvable from any VM, woken on enqueue.
 * Enqueue never calls into a VM synchronously; the owner's wake-up runs from setImmediate.
 */
export class SharedQueueRegistry implements SharedQueueService {
  private readonly byId = new Map<number, Queue>();
  private readonly byName = new Map<string, Queue>();
  private nextId = 1;

  register(vmId: string, name: string, onReady: (queueId: number) => void): { id: number; registration: Disposable } {
    const key = `${vmId}\0${name}`;
    let q = this.byName.get(key);
    if (!q) {
      q = { id: this.nextId++, vmId, name, items: [], onReady };
      this.byName.set(key, q);
      this.byId.set(q.id, q);
    } else {
      q.onReady = onReady; // re-registering opens the existing queue and takes over the wake-up
    }
    const queue = q;
    return {
      id: queue.id,
      registration: {
        dispose: () => {
          if (queue.onReady === onReady) queue.onReady = undefined;
        },
      },
    };
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.byName.get(`${vmId}\0${name}`)?.id;
  }

  enqueue(id: number, value: Buffer): boolean {
    const q = this.byId.get(id);
    if (!q) return false;
    q.items.push(Buffer.from(value));
    const wake = q.onReady;
    if (wake) setImmediate(() => wake(id));
    return true;
  }

  /** undefined: unknown queue; null: empty. */
  dequeue(id: number): Buffer | null | undefined {
    const q = this.byId.get(id);
    if (!q) return undefined;
    return q.items.shift() ?? null;
  }
}
