import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { InstrumentedModule } from './instrument';

type Reply = { readonly ok: true; readonly result: InstrumentedModule } | { readonly ok: false; readonly message: string };

let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs instrument() in a short-lived worker thread, one module at a time: binaryen's heap (hundreds of MB for a
 * Go module) is released when the worker ends, and the event loop that serves traffic, the admin and xDS keeps
 * running while a multi-megabyte module is rewritten. binaryen's own console output is captured, never
 * printed on the sidecar's stdout.
 */
export function runInstrumentation(bytes: Uint8Array, budget: number): Promise<InstrumentedModule> {
  const run = queue.then(() => runWorker(bytes, budget));
  queue = run.catch(() => undefined);
  return run;
}

function runWorker(bytes: Uint8Array, budget: number): Promise<InstrumentedModule> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(join(__dirname, 'instrument-worker.js'), { workerData: { bytes, budget }, stdout: true, stderr: true });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => void (output = (output + c.toString()).slice(-2000)));
    worker.stderr.on('data', (c: Buffer) => void (output = (output + c.toString()).slice(-2000)));
    let settled = false;
    worker.once('message', (reply: Reply) => {
      settled = true;
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.message));
      void worker.terminate();
    });
    worker.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (settled) return;
      settled = true;
      reject(new Error(`instrumentation worker exited with code ${code}${output ? `: ${output.trim()}` : ''}`));
    });
  });
}
