/**
 * Paired comparison of two interleaved rows: each round's sample of a row against the same round's sample of its
 * baseline, taken seconds apart. On a shared VM the whole machine drifts by tens of percent over a minute (the
 * no-plugin row alone was seen at 64-95 µs per request in one run), so a difference of medians over independent
 * rounds cannot show a few µs; a difference within a round cancels the drift the two samples share.
 *
 * The interval is the distribution-free one for a median (the sign test's): with n paired differences sorted,
 * [d(k), d(n+1-k)] for the largest k with P(Binomial(n, 1/2) < k) <= (1 - CONFIDENCE) / 2. It assumes only that
 * the rounds are independent, not that the noise is normal (it is not: a round the host stole from is an outlier).
 *
 * What it cannot see is a difference that stays with a process for its life: on the 2-core VM this was written on,
 * two identical `.wat` no-op sidecar processes measured in the same rounds read 20-30 µs per request apart
 * (and three no-plugin ones within 3 µs of each other). Such a difference is a bias of the row's one process, not
 * noise between rounds, and no number of rounds narrows it; the interval speaks for the processes measured (the
 * plugin bench so runs each row on two processes that take the rounds in turn).
 */

/** Two-sided confidence the interval is built for (the achieved level, at least this, is printed with it). */
export const CONFIDENCE = 0.9;

export interface PairedEstimate {
  /** Median of the per-round differences (or ratios). */
  readonly median: number;
  /** The interval's ends; undefined when there are too few rounds for any interval at CONFIDENCE. */
  readonly low: number | undefined;
  readonly high: number | undefined;
  /** The interval's actual confidence (order statistics make it a step function of n). */
  readonly confidence: number;
  readonly rounds: number;
}

function binomialHalfCdf(n: number, k: number): number {
  // P(X <= k) for X ~ Binomial(n, 1/2).
  let term = 1;
  let sum = 0;
  for (let i = 0; i <= k; i++) {
    sum += term;
    term = (term * (n - i)) / (i + 1);
  }
  return sum / 2 ** n;
}

/** The median of `values` with its distribution-free interval. */
export function medianInterval(values: readonly number[]): PairedEstimate {
  const d = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = d.length;
  const mid = n >> 1;
  const median = n === 0 ? NaN : n % 2 === 1 ? d[mid]! : (d[mid - 1]! + d[mid]!) / 2;
  let k = 0;
  while (k + 1 <= n >> 1 && binomialHalfCdf(n, k) <= (1 - CONFIDENCE) / 2) k++;
  if (k === 0) return { median, low: undefined, high: undefined, confidence: 0, rounds: n };
  return { median, low: d[k - 1], high: d[n - k], confidence: 1 - 2 * binomialHalfCdf(n, k - 1), rounds: n };
}

/** Each round's `row - base` (samples at the same index were taken in the same round). */
export function roundDifferences(row: readonly number[], base: readonly number[]): number[] {
  return row.map((x, i) => x - base[i]!);
}

/** Round by round `row - base`: the median of roundDifferences with its interval. */
export function pairedDifference(row: readonly number[], base: readonly number[]): PairedEstimate {
  return medianInterval(roundDifferences(row, base));
}

/** Round by round `row / base`. */
export function pairedRatio(row: readonly number[], base: readonly number[]): PairedEstimate {
  return medianInterval(row.map((x, i) => x / base[i]!));
}

/**
 * Met when the whole interval is within the goal, NOT MET when the whole interval is past it, else NOT JUDGED:
 * the rounds cannot tell which side of the goal the row is on.
 */
export function intervalVerdict(e: PairedEstimate, goal: number): string {
  if (e.low === undefined || e.high === undefined) return `NOT JUDGED (${e.rounds} rounds give no ${CONFIDENCE * 100}% interval)`;
  if (e.high <= goal) return 'met';
  if (e.low > goal) return 'NOT MET';
  return 'NOT JUDGED (the interval spans the goal)';
}

const signed = (x: number, digits: number, sign: boolean): string => `${sign && x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

/** `+12.3 µs (90% CI 4.1..20.0, 10 rounds)`-style text; `unit` follows the numbers. */
export function describeEstimate(e: PairedEstimate, unit: string, digits = 1, sign = true): string {
  const f = (x: number): string => signed(x, digits, sign);
  const interval = e.low === undefined || e.high === undefined
    ? 'no interval'
    : `${(e.confidence * 100).toFixed(0)}% CI ${f(e.low)}..${f(e.high)}`;
  return `${f(e.median)}${unit} (${interval}, ${e.rounds} rounds)`;
}

/** A table cell: `+4.2 [-0.8..+7.1]`, or the median alone when there is no interval. */
export function estimateCell(e: PairedEstimate): string {
  const f = (x: number): string => signed(x, 1, true);
  return e.low === undefined || e.high === undefined ? f(e.median) : `${f(e.median)} [${f(e.low)}..${f(e.high)}]`;
}

/**
 * The order rows run in within a round: forward in even rounds, backward in odd ones (A B C, C B A, ...), so a
 * drift that is linear over a pair of rounds lands on every row alike instead of on the rows that run last.
 */
export function roundOrder(rows: number, round: number): number[] {
  const order = Array.from({ length: rows }, (_, i) => i);
  return round % 2 === 0 ? order : order.reverse();
}
