/**
 * The fuzz harness: one FuzzTarget per parser that takes untrusted bytes (fast-check: property-based, with
 * shrinking). A target is an arbitrary of inputs plus a `check` that throws an OracleFailure when the parser
 * breaks one of its promises (an untyped error, a split/unsplit difference, a round trip that moves).
 *
 * The same target object runs in three places:
 *  - `<target>.test.ts` (CI): the committed corpus first (test/fuzz/corpus/<target>/*.json: interesting inputs
 *    and every failure ever found, replayed as regression cases), then a fixed seed list with bounded runs;
 *  - scripts/fuzz.mjs: random seeds for as long as asked, writing each new failure into the corpus.
 */
import { readdirSync, readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { REPO_ROOT } from '../support/plugins';

export interface FuzzTarget<I> {
  readonly name: string;
  readonly arbitrary: fc.Arbitrary<I>;
  /** Throws (an OracleFailure or whatever escaped the parser) when the parser misbehaves on `input`. */
  check(input: I): void;
  /** Corpus encoding (JSON-safe) of an input, and back. */
  encode(input: I): unknown;
  decode(json: unknown): I;
  /** Runs per seed in CI; the whole fuzz suite must stay within 60 s on 2 cores. */
  readonly ciRuns: number;
  /** Loads what check() needs (a VM, the protos) before the first input; undone by teardown. */
  setup?(): Promise<void>;
  teardown?(): void;
}

/** The parser broke a promise (as opposed to throwing something itself, which is reported as is). */
export class OracleFailure extends Error {
  override name = 'OracleFailure';
}

export const CI_SEEDS = [0x5eed0001, 0x5eed0002, 0x5eed0003] as const;

export function corpusDir(target: string): string {
  return join(REPO_ROOT, 'test', 'fuzz', 'corpus', target);
}

export interface CorpusEntry {
  readonly file: string;
  readonly note: string;
  readonly input: unknown;
}

/** Corpus entries in file-name order (failures are named `found-*`, seeds `seed-*`). */
export function readCorpus(target: string): CorpusEntry[] {
  const dir = corpusDir(target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { note?: string; input: unknown };
      return { file, note: doc.note ?? '', input: doc.input };
    });
}

/** Writes an input into the corpus under a content-derived name; returns the file name. */
export function addToCorpus(target: FuzzTarget<unknown>, input: unknown, note: string, prefix = 'found'): string {
  const encoded = target.encode(input);
  const text = JSON.stringify({ note, input: encoded }, null, 1);
  const file = `${prefix}-${createHash('sha256').update(JSON.stringify(encoded)).digest('hex').slice(0, 12)}.json`;
  mkdirSync(corpusDir(target.name), { recursive: true });
  writeFileSync(join(corpusDir(target.name), file), `${text}\n`);
  return file;
}

/**
 * Calls `fn`; an error that is not an instance of one of `allowed` is the parser's fault. Returns the typed
 * error (or undefined when `fn` returned) so the caller can check more of it.
 */
export function onlyTyped<E extends Error>(fn: () => void, allowed: ReadonlyArray<abstract new (...a: never[]) => E>, what: string): E | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (allowed.some((cls) => err instanceof cls)) return err as E;
    const e = err as Error;
    throw new OracleFailure(`${what}: untyped ${e?.name ?? typeof err}: ${e?.message ?? String(err)}\n${e?.stack ?? ''}`);
  }
}

/** Base64 corpus encoding of bytes. */
export const b64 = {
  enc: (b: Uint8Array): string => Buffer.from(b).toString('base64'),
  dec: (s: unknown): Buffer => Buffer.from(String(s), 'base64'),
};

/** Registers the CI tests of a target: the corpus replay, then one bounded run per fixed seed. */
export function fuzzTests<I>(target: FuzzTarget<I>): void {
  if (target.setup) before(() => target.setup!());
  if (target.teardown) after(() => target.teardown!());
  test(`${target.name}: corpus replays (regressions first)`, () => {
    // Every entry is replayed, so one failure does not hide the others.
    const failures: string[] = [];
    for (const e of readCorpus(target.name)) {
      try {
        target.check(target.decode(e.input));
      } catch (err) {
        failures.push(`corpus ${target.name}/${e.file} (${e.note.slice(0, 200)}): ${(err as Error).message.split('\n')[0]}`);
      }
    }
    if (failures.length > 0) throw new Error(`${failures.length} corpus input(s) fail:\n${failures.join('\n')}`);
  });
  for (const seed of CI_SEEDS) {
    test(`${target.name}: ${target.ciRuns} random inputs, seed ${seed}`, () => {
      const details = fc.check(fc.property(target.arbitrary, (input) => target.check(input)), { seed, numRuns: target.ciRuns });
      if (details.failed) throw new Error(describeFailure(target, details));
    });
  }
}

/** The shrunk input as a corpus entry would hold it, and what went wrong (fast-check's own report omits the error). */
export function describeFailure<I>(target: FuzzTarget<I>, details: fc.RunDetails<[I]>): string {
  const input = details.counterexample?.[0];
  const err = details.errorInstance as Error | undefined;
  return [
    `${target.name}: failed after ${details.numRuns} runs (seed ${details.seed}, path ${details.counterexamplePath ?? ''}, shrunk ${details.numShrinks} times)`,
    `input: ${input === undefined ? '?' : printable(() => JSON.stringify(target.encode(input)))}`,
    `error: ${err?.message ?? String(details.errorInstance)}`,
    'add it to the corpus: node scripts/fuzz.mjs --target ' + target.name + ' --seed ' + String(details.seed),
  ].join('\n');
}

/** JSON.stringify itself overflows on inputs nested thousands deep. */
function printable(text: () => string): string {
  try {
    return text();
  } catch (err) {
    return `(cannot print: ${(err as Error).message})`;
  }
}
