import { parentPort, workerData } from 'node:worker_threads';
import { instrument } from './instrument';

/** Worker-thread entry of runInstrumentation(): rewrites one module and posts the result back. */
interface Job {
  readonly bytes: Uint8Array;
  readonly budget: number;
}

const job = workerData as Job;
instrument(job.bytes, job.budget).then(
  (result) => parentPort!.postMessage({ ok: true, result }),
  (err: unknown) => parentPort!.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) }),
);
