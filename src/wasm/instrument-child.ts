import { readFile, writeFile } from 'node:fs/promises';
import { instrument, type MemoryImport } from './instrument';

/**
 * Child-process entry of runInstrumentation() (instrument-runner.ts): takes one job over IPC, rewrites the module in
 * the job's input file, writes the rewritten bytes to its output file and answers with the memory import, then
 * exits with the IPC channel.
 */
export interface InstrumentJob {
  readonly inFile: string;
  readonly budget: number;
  readonly outFile: string;
}

export type InstrumentReply = { readonly ok: true; readonly memory?: MemoryImport } | { readonly ok: false; readonly message: string };

// The sidecar went away (its IPC channel closed): nobody will read the result.
process.once('disconnect', () => process.exit(0));

process.once('message', (job: InstrumentJob) => {
  readFile(job.inFile)
    .then((bytes) => instrument(bytes, job.budget))
    .then(async ({ bytes, memory }): Promise<InstrumentReply> => {
      await writeFile(job.outFile, bytes);
      return { ok: true, ...(memory ? { memory } : {}) };
    })
    .catch((err: unknown): InstrumentReply => ({ ok: false, message: err instanceof Error ? err.message : String(err) }))
    .then((reply) => process.connected && process.send!(reply, undefined, {}, () => process.disconnect()));
});
