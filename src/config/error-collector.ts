import { ConfigError } from '../common/errors';

/**
 * While collecting, configuration readers record an item's error and go on with the next item instead of stopping
 * at the first, so `validate` can report every mistake in a file at once. Outside collectConfigErrors() an error
 * is thrown as usual, so `run` and the xDS client see exactly the errors they always did.
 */
let collected: ConfigError[] | undefined;

/** Runs `fn` and returns every error it recorded, plus what it threw, if anything. */
export function collectConfigErrors<T>(fn: () => T): { readonly value: T | undefined; readonly errors: readonly ConfigError[]; readonly thrown: unknown } {
  const outer = collected;
  const errors: ConfigError[] = [];
  collected = errors;
  try {
    return { value: fn(), errors, thrown: undefined };
  } catch (err) {
    return { value: undefined, errors, thrown: err };
  } finally {
    collected = outer;
  }
}

/** Records a ConfigError while collecting; throws anything else, and everything when not collecting. */
export function recordOrThrow(err: unknown): void {
  if (collected && err instanceof ConfigError) collected.push(err);
  else throw err;
}

/** `items.map(fn)`, where an item whose `fn` fails is recorded (while collecting) and left out. */
export function mapRecording<T, U>(items: readonly T[], fn: (item: T, index: number) => U): U[] {
  const out: U[] = [];
  items.forEach((item, i) => {
    try {
      out.push(fn(item, i));
    } catch (err) {
      recordOrThrow(err);
    }
  });
  return out;
}
