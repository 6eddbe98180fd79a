import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InstrumentedModule } from './instrument';
import type { InstrumentJob, InstrumentReply } from './instrument-child';

let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs instrument() in a short-lived child process, one module at a time. A process, not a worker thread:
 * binaryen's heap is hundreds of MB for a Go module, and after a worker thread ended, the malloc arena it had
 * used stayed in the sidecar's RSS (a fresh start with the Go add-header plugin settled at 213 MiB idle, the
 * AssemblyScript example at 159, against 83 and 66 with the rewrite already on disk). The module goes and
 * comes back as files, the rewrite read whole like the disk cache's, not as IPC messages (their serialized
 * copies and a pipe's worth of chunks left about 5 MiB more). The event loop that serves traffic, the admin and
 * xDS keeps running meanwhile. binaryen's own console output is captured, never printed on the sidecar's stdout,
 * and is quoted if the child fails.
 */
export function runInstrumentation(bytes: Uint8Array, budget: number): Promise<InstrumentedModule> {
  const run = queue.then(() => runChild(bytes, budget));
  // Settles to nothing either way: a fulfilled `run.catch()` would keep the last 7 MB rewrite alive in `queue`.
  queue = run.then(() => undefined, () => undefined);
  return run;
}

async function runChild(bytes: Uint8Array, budget: number): Promise<InstrumentedModule> {
  const dir = await mkdtemp(join(tmpdir(), 'pws-instrument-'));
  try {
    const inFile = join(dir, 'in.wasm');
    const outFile = join(dir, 'out.wasm');
    await writeFile(inFile, bytes);
    const reply = await askChild({ inFile, budget, outFile });
    if (!reply.ok) throw new Error(reply.message);
    const rewritten = await readFile(outFile);
    return reply.memory ? { bytes: rewritten, memory: reply.memory } : { bytes: rewritten };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function askChild(job: InstrumentJob): Promise<InstrumentReply> {
  return new Promise((resolve, reject) => {
    // No inherited execArgv: the sidecar's --inspect or heap flags are not the rewrite's.
    const child = fork(join(__dirname, 'instrument-child.js'), [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [],
    });
    // A sidecar that exits mid-rewrite takes the rewrite with it.
    const killChild = (): void => void child.kill();
    process.once('exit', killChild);
    let output = '';
    const keep = (c: Buffer): void => void (output = (output + c.toString()).slice(-2000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let reply: InstrumentReply | undefined;
    child.once('message', (r: InstrumentReply) => void (reply = r));
    child.once('error', (err) => {
      child.kill();
      reject(err);
    });
    // Settled at exit, after the child has written its file and closed it.
    child.once('exit', (code, signal) => {
      process.off('exit', killChild);
      if (reply) resolve(reply);
      else reject(new Error(`instrumentation process exited with ${signal ?? `code ${code}`}${output ? `: ${output.trim()}` : ''}`));
    });
    child.send(job);
  });
}
