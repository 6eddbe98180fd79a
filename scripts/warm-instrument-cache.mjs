// Instruments every built plugin once (the watchdog and memory-cap rewrite, src/wasm/instrument.ts) into the
// on-disk cache, before the suite: a cold rewrite of a Go module takes seconds, and test files running side by
// side would otherwise each rewrite the same module at once. A module the rewrite refuses is left to its tests.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { ModuleCache } = require(join(root, 'dist', 'src', 'wasm', 'module-cache.js'));

function wasmFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return wasmFiles(path);
    return name.endsWith('.wasm') ? [path] : [];
  });
}

const started = Date.now();
const cache = new ModuleCache();
let done = 0;
for (const file of wasmFiles(join(root, 'build', 'plugins'))) {
  try {
    await cache.compile(readFileSync(file));
    done++;
  } catch (err) {
    console.log(`warm-instrument-cache: ${relative(root, file)} not instrumented: ${err.message.split('\n')[0]}`);
  }
}
console.log(`warm-instrument-cache: ${done} modules in ${((Date.now() - started) / 1000).toFixed(1)} s`);
