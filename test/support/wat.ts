/** wabt's text-to-binary, for tests that write their module inline. */
interface Wabt {
  parseWat(name: string, text: string, features?: Record<string, boolean>): {
    resolveNames(): void;
    toBinary(options: { write_debug_names?: boolean }): { buffer: Uint8Array };
    destroy(): void;
  };
}

let wabt: Promise<Wabt> | undefined;

/** The module `text` describes; with `debugNames`, a name section from its `$names` (functions and locals). */
export async function watToWasm(text: string, options: { features?: Record<string, boolean>; debugNames?: boolean } = {}): Promise<Uint8Array> {
  wabt ??= (require('wabt') as () => Promise<Wabt>)();
  const mod = (await wabt).parseWat('inline.wat', text, options.features ?? {});
  try {
    if (options.debugNames) mod.resolveNames();
    return mod.toBinary({ write_debug_names: options.debugNames ?? false }).buffer;
  } finally {
    mod.destroy();
  }
}
