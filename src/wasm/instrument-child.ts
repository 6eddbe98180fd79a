import { readFile, writeFile } from 'node:fs/promises';
import { instrument } from './instrument';

/**
 * Child-process entry of runInstrumentation(): takes one job over IPC, rewrites the module in the job's input
 * file, writes the rewritten bytes to its output file and answers with the memory import, then exits with the IPC channel.
 */
interface Job {
  readonly inFile: string;
  readonly budget: number;
  readonly outFile: string;
}

// The sidecar went away (its IPC channel closed): nobody will read the result.
process.once('disconnect', () => process.exit(0));

process.once('message', (job: Job) => {
  readFile(job.inFile)
    .then((bytes) => instrument(bytes, job.budget))
    .then(async ({ bytes, memory }) => {
      await writeFile(job.outFile, bytes);
      return { ok: true as const, ...(memory ? { memory } : {}) };
    })
    .catch((err: unknown) => ({ ok: false as const, message: err instanceof Error ? err.message : String(err) }))
    .then((reply) => process.connected && process.send!(reply, undefined, {}, () => process.disconnect()));
});
