/**
 * Envoy's JitteredExponentialBackOffStrategy: next delay is random() % interval, interval doubles up to max,
 * reset() after any message (grpc_stream.h). Defaults 500 ms base, 30 s max.
 */
export class JitteredBackoff {
  private intervalMs: number;
  constructor(
    private readonly baseMs = 500,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {
    this.intervalMs = baseMs;
  }

  nextMs(): number {
    const delay = Math.floor(this.random() * this.intervalMs);
    this.intervalMs = Math.min(this.intervalMs * 2, this.maxMs);
    return delay;
  }

  reset(): void {
    this.intervalMs = this.baseMs;
  }
}
