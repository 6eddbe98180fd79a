import { SidecarError } from '../common/errors';
import { WATCHDOG_BUDGET_EXPORT } from './instrument';

/**
 * Envoy has no deadline on a plugin callback (a stuck callback stalls its worker for good). Here one outermost
 * guest call may hold the thread for at most this long: a second is far beyond what a request callback should
 * take on the data path (Higress plugins take microseconds), yet does not fail a legitimately slow one on a
 * loaded machine. Measured on the monotonic wall clock, because what matters is how long the thread (its other
 * listeners, the admin, xDS) is held, and process CPU time would count other threads.
 */
export const DEFAULT_CALL_DEADLINE_MS = 1000;
/**
 * Start-up (`_initialize`/`main`/`_start`, proxy_on_vm_start, proxy_on_configure) runs once per VM and may
 * parse a large configuration or initialise a Go runtime: ten times the request deadline.
 */
export const DEFAULT_START_DEADLINE_MS = 10_000;
/**
 * Hooks (loop headers, entries of functions that call: src/wasm/watchdog-hooks.ts) between two clock reads. A hook costs a few instructions (a
 * fraction of a ns, bench/watchdog/hook-cost.ts) and a clock read ~0.1 µs, so checking every 10 000 hooks costs
 * well under 1% while the time between checks stays in the tens of microseconds for guest code (longer only
 * when each iteration is a slow host call; large guest-memory accesses poll the clock themselves).
 */
export const CHECK_BUDGET = 10_000;

/** How the module's start function (run by instantiation) is named in errors. */
export const START_FUNCTION = '(start function)';
/** The callbacks that run the deadline of start-up rather than the per-call one. */
const START_CALLBACKS: ReadonlySet<string> = new Set([START_FUNCTION, '_initialize', 'main', '_start', 'proxy_on_vm_start', 'proxy_on_configure']);

export class PluginDeadlineError extends SidecarError {
  override name = 'PluginDeadlineError';
  override readonly code = 'PWS_ERR_PLUGIN_DEADLINE';
  constructor(readonly callback: string, readonly deadlineMs: number) {
    super(`${callback} ran past its deadline of ${deadlineMs} ms and was stopped`);
  }
}

const NOT_STARTED = -1;

export interface Deadlines {
  /** Per outermost guest call, in ms. */
  readonly callMs: number;
  /** For start-up and configure callbacks, in ms. */
  readonly startMs: number;
}

/**
 * The host side of `pws_watchdog.check`: armed by PluginVm when an outermost guest call starts, read by the
 * guest every CHECK_BUDGET hooks. Once the deadline has passed it answers 0 (the guest then traps) and keeps
 * answering 0 until re-armed, so a guest that survives one trap inside a nested host call (malloc from a host
 * function) traps again at its next hook.
 */
export class GuestWatchdog {
  /** Infinity: no guest call; NOT_STARTED: armed, clock not read yet; else the deadline on performance.now(). */
  private deadline = Number.POSITIVE_INFINITY;
  private armedFor = 0;
  private armedCallback = '';
  /** Set when a check found the deadline passed; cleared by arm(). */
  expired = false;
  /** A WebAssembly.Global (Node's typings have no such type). */
  private budget: { value: number } | undefined;

  constructor(readonly deadlines: Deadlines) {
    for (const [name, ms] of Object.entries(deadlines)) {
      if (!(Number.isFinite(ms) && ms > 0)) throw new RangeError(`deadline ${name} must be a positive number of ms, got ${ms}`);
    }
  }

  /**
   * The imported function; an arrow so it can be handed to the import object as it is. The clock is first read
   * here, not when the call starts: a clock read costs ~0.1 µs, more than most callbacks' whole guest time,
   * and a call that never spends its budget cannot be a runaway. The deadline so starts at most one budget of
   * hooks (microseconds of guest code) after the call did.
   */
  readonly check = (): number => {
    if (this.expired) return 0;
    const deadline = this.deadline;
    if (deadline === Number.POSITIVE_INFINITY) return CHECK_BUDGET;
    const now = performance.now();
    if (deadline === NOT_STARTED) this.deadline = now + this.armedFor;
    else if (now >= deadline) {
      this.expired = true;
      return 0;
    }
    return CHECK_BUDGET;
  };

  /** The instance's counter global, so poll() can make the guest check at its next hook. */
  attach(instance: WebAssembly.Instance): void {
    const g: unknown = instance.exports[WATCHDOG_BUDGET_EXPORT];
    if (typeof g === 'object' && g !== null && 'value' in g) this.budget = g as { value: number };
  }

  /**
   * For host work that takes long per call (copying large guest buffers): checks the clock now and, past the
   * deadline, spends the guest's budget so its next hook traps. A loop whose every iteration is a slow host
   * call then stops near the deadline instead of after CHECK_BUDGET such calls.
   */
  poll(): void {
    if (this.expired || this.check() !== 0) return;
    if (this.budget) this.budget.value = 0;
  }

  /** Starts the deadline of an outermost call to `callback` (lazily: see check). */
  arm(callback: string): void {
    this.armedFor = START_CALLBACKS.has(callback) ? this.deadlines.startMs : this.deadlines.callMs;
    this.armedCallback = callback;
    this.deadline = NOT_STARTED;
    this.expired = false;
  }

  disarm(): void {
    this.deadline = Number.POSITIVE_INFINITY;
  }

  /** The error a trap stands for when the watchdog caused it, else undefined. */
  deadlineError(): PluginDeadlineError | undefined {
    return this.expired ? new PluginDeadlineError(this.armedCallback, this.armedFor) : undefined;
  }
}
