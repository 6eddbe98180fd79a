/** A subscription handle: keep it, and dispose() it when the subscriber closes (Envoy's member-update handles). */
export interface Disposable {
  dispose(): void;
}

/** Something that owns sockets, timers or VMs: close() drains, destroy() fails what is pending; both idempotent. */
export interface Closable {
  close(): Promise<void>;
  destroy(err?: Error): Promise<void>;
  readonly closed: boolean;
}

/**
 * A minimal typed event source. A listener that throws is reported through `onListenerError` and does not stop
 * the other listeners.
 */
export class Emitter<T> {
  private readonly listeners = new Set<(event: T) => void>();
  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  on(listener: (event: T) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => void this.listeners.delete(listener) };
  }

  emit(event: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
