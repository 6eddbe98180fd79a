import { readFileSync } from 'node:fs';

/**
 * When this worker's first module ran (epoch ms), for its start report. worker-main imports it first, so the time
 * after it to the end of worker-main's imports is what requiring the data plane costs. (A worker's
 * performance.timeOrigin is the process's, not the thread's.)
 */
export const threadStartedAt = performance.timeOrigin + performance.now();

/** Now, in epoch ms (the clock of threadStartedAt, comparable across threads). */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The calling thread's time on a CPU so far, ms (Linux: /proc/thread-self/schedstat, in ns), or undefined where
 * there is none. Beside the wall-clock phases: on a shared machine a phase's wall time is mostly waiting for a
 * core, its CPU time is what the worker spent.
 */
export function threadCpuMs(): number | undefined {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** Taken when the first module runs: the CPU phases start here. */
export const threadCpuAtStart = threadCpuMs();
