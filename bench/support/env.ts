/**
 * A number a bench reads from its environment (rounds, seconds, connections, counts), or the default when unset.
 * A value that is not a number, or not above zero, stops the bench with the variable's name: `Number('ten')` would
 * run it on NaN rounds and print a table of NaN, and 0 rounds or seconds measure nothing.
 */
export function envNumber(name: string, fallback: number, options: { readonly allowZero?: boolean } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  const ok = Number.isFinite(value) && (value > 0 || (options.allowZero === true && value === 0));
  if (!ok) throw new Error(`${name}=${JSON.stringify(raw)}: expected a number ${options.allowZero ? 'of at least 0' : 'above 0'}`);
  return value;
}
