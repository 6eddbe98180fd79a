/** A decoded xDS resource: its name and either the domain value or every error found (with field paths). */
export type Decoded<T> =
  | { readonly name: string; readonly ok: true; readonly value: T }
  | { readonly name: string; readonly ok: false; readonly errors: readonly string[] };
