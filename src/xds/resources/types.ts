/** A decoded xDS resource: its name and either the domain value or every error found (with field paths). */
export type Decoded<T> =
  | { readonly name: string; readonly ok: true; readonly value: T }
  | {
      readonly name: string;
      readonly ok: false;
      readonly errors: readonly string[];
      /**
       * Where Envoy finds the error, which decides what else of the response is applied: 'decode' errors
       * (malformed bytes, protoc-gen-validate rules) are found while the whole response is decoded and reject all
       * of it; 'build' errors are found creating the resource and follow the type's partial-apply rule.
       */
      readonly stage: 'decode' | 'build';
    };
