/** V8's `--trace-gc-nvp` lines, read for what the GC tests and the burst bench hold the data plane to. */

export interface Scavenge {
  /** Bytes promoted to the old generation by this scavenge. */
  readonly promoted: number;
  /** Main-thread pause, ms. */
  readonly pauseMs: number;
}

export interface GcTrace {
  readonly scavenges: Scavenge[];
  /** Full (mark-compact) collections. */
  readonly markCompacts: number;
}

export function readGcTrace(log: string): GcTrace {
  const scavenges: Scavenge[] = [];
  let markCompacts = 0;
  for (const line of log.split('\n')) {
    if (/ gc=mc /.test(line)) markCompacts++;
    if (!/ gc=s /.test(line)) continue;
    const promoted = / promoted=(\d+)/.exec(line);
    const pause = / pause=([\d.]+)/.exec(line);
    if (promoted) scavenges.push({ promoted: Number(promoted[1]), pauseMs: pause ? Number(pause[1]) : NaN });
  }
  return { scavenges, markCompacts };
}
