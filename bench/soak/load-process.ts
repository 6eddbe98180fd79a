/**
 * The soak's load, in a process of its own so that it competes with the sidecar only for CPU: a constant
 * request rate through a keep-alive undici Pool, every request with a fresh `x-nonce` (the redis-gate plugin
 * then makes one Redis call per request). Each second it reports what came back, by status, and how many
 * requests got no answer at all (a client timeout: the sidecar kept it for longer than `timeoutMs`).
 * argv: url rate(req/s) connections timeoutMs. IPC `stop`: stop sending, wait for what is in flight, report, exit.
 */
import { Pool } from 'undici';

export interface LoadReport {
  readonly type: 'second';
  /** Unix ms at the start of that second. */
  readonly at: number;
  readonly statuses: Record<string, number>;
  readonly unanswered: number;
  /** Sends skipped because too many requests were in flight (the sidecar fell behind). */
  readonly skipped: number;
  readonly inFlight: number;
}

const [url, rateArg, connArg, timeoutArg] = process.argv.slice(2);
const rate = Number(rateArg ?? 200);
const connections = Number(connArg ?? 16);
const timeoutMs = Number(timeoutArg ?? 10_000);
const origin = new URL(url!).origin;
const pool = new Pool(origin, { connections, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30_000 });
const maxInFlight = connections * 8;

let bucket = { at: Date.now(), statuses: {} as Record<string, number>, unanswered: 0, skipped: 0 };
let inFlight = 0;
let seq = 0;
let stopping = false;

function flush(): void {
  const report: LoadReport = { type: 'second', at: bucket.at, statuses: bucket.statuses, unanswered: bucket.unanswered, skipped: bucket.skipped, inFlight };
  process.send?.(report);
  bucket = { at: Date.now(), statuses: {}, unanswered: 0, skipped: 0 };
}

function one(): void {
  if (inFlight >= maxInFlight) {
    bucket.skipped++;
    return;
  }
  inFlight++;
  const nonce = `${process.pid}-${++seq}`;
  pool
    .request({ path: `/soak/${seq % 100}`, method: 'GET', headers: { 'x-nonce': nonce } })
    .then(async (res) => {
      await res.body.dump();
      bucket.statuses[res.statusCode] = (bucket.statuses[res.statusCode] ?? 0) + 1;
    })
    .catch((err: unknown) => {
      const code = (err as { code?: string }).code ?? 'error';
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') bucket.unanswered++;
      else bucket.statuses[code] = (bucket.statuses[code] ?? 0) + 1;
    })
    .finally(() => inFlight--);
}

// A tick every 10 ms sends what the rate owes so far (no drift when a tick is late).
const started = Date.now();
let sent = 0;
const ticker = setInterval(() => {
  if (stopping) return;
  const owed = Math.floor(((Date.now() - started) / 1000) * rate) - sent;
  for (let i = 0; i < owed; i++) one();
  sent += Math.max(0, owed);
}, 10);
const reporter = setInterval(flush, 1000);

process.on('message', (msg: { type: string }) => {
  if (msg.type !== 'stop') return;
  stopping = true;
  clearInterval(ticker);
  const wait = setInterval(() => {
    if (inFlight > 0) return;
    clearInterval(wait);
    clearInterval(reporter);
    flush();
    void pool.close().then(() => process.exit(0));
  }, 50);
});
