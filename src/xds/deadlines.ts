/**
 * Named deadlines on one timer: the does-not-exist timers and the per-resource TTLs (xds.md §4, §7). Envoy keeps
 * one timer per TtlManager for the earliest expiry; so does this, so 10 000 TTL'd resources cost one timer.
 * Expired names are handed to `onExpired` in one batch per tick.
 */
export class DeadlineSet {
  private readonly deadlines = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (ms, `now()` clock); Infinity when none is armed. */
  private armedAt = Infinity;

  constructor(
    private readonly onExpired: (names: string[]) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.deadlines.size;
  }

  has(name: string): boolean {
    return this.deadlines.has(name);
  }

  /** Starts or restarts the deadline for `name`, `ms` from now. */
  set(name: string, ms: number): void {
    const at = this.now() + ms;
    this.deadlines.set(name, at);
    if (at < this.armedAt) this.arm(at);
  }

  /** Starts the deadline for `name` unless one is running. */
  setIfAbsent(name: string, ms: number): void {
    if (!this.deadlines.has(name)) this.set(name, ms);
  }

  /** Forgets `name`. The timer is left armed: it finds nothing due and re-arms for the next deadline. */
  delete(name: string): void {
    this.deadlines.delete(name);
    if (this.deadlines.size === 0) this.disarm();
  }

  clear(): void {
    this.deadlines.clear();
    this.disarm();
  }

  private arm(at: number): void {
    this.disarm();
    this.armedAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = this.now();
    const expired: string[] = [];
    let next = Infinity;
    for (const [name, at] of this.deadlines) {
      // setTimeout may fire a fraction of a millisecond early against performance.now().
      if (at <= now + 1) expired.push(name);
      else if (at < next) next = at;
    }
    for (const name of expired) this.deadlines.delete(name);
    if (next !== Infinity) this.arm(next);
    if (expired.length > 0) this.onExpired(expired);
  }
}

/** A (re)sent resource or heartbeat with a TTL (re)starts its timer; without one, stops it (xds.md §7). */
export function setTtl(ttl: DeadlineSet, name: string, ttlMs: number | undefined): void {
  if (ttlMs !== undefined && ttlMs > 0) ttl.set(name, ttlMs);
  else if (ttl.size > 0) ttl.delete(name);
}
