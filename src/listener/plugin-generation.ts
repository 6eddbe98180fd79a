import type { Logger } from '../common/logger';
import type { FilterLease } from '../http/listener';
import type { Plugin } from '../runtime/plugin';

/**
 * One loaded plugin of a filter whose configuration can change (ECDS): streams lease it for their whole life, so
 * a swapped-out plugin serves the streams it started and is closed when the last of them completes.
 */
export class PluginGeneration {
  private leases = 0;
  private retired = false;
  private closed = false;
  private readonly lease: FilterLease;

  constructor(
    readonly plugin: Plugin,
    private readonly logger: Logger,
  ) {
    this.lease = { plugin, release: () => this.release() };
  }

  /** Streams running on this plugin. */
  get active(): number {
    return this.leases;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  acquire(): FilterLease {
    this.leases++;
    return this.lease;
  }

  private release(): void {
    if (--this.leases === 0 && this.retired) this.close();
  }

  /** No new stream gets this plugin; it closes once the streams running on it complete. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.leases === 0) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.plugin.close();
    } catch (err) {
      this.logger.error({ plugin: this.plugin.config.name, err: (err as Error).message }, 'plugin close failed');
    }
  }
}
