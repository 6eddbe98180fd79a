#!/usr/bin/env node
// Builds every test/example plugin from source into build/plugins/<name>.wasm:
//   plugins/as/<name>/index.ts  -> AssemblyScript (asc) with the npm Proxy-Wasm SDK it imports
//   plugins/wat/<name>.wat      -> wabt's wat2wasm (ABI edge cases written by hand)
// Nothing compiled is committed; `make plugins` runs this.
import { readdirSync, mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'plugins');
mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const only = process.argv.slice(2);
const wanted = (name) => only.length === 0 || only.includes(name);

function upToDate(target, sources) {
  if (!existsSync(target)) return false;
  const t = statSync(target).mtimeMs;
  return sources.every((s) => statSync(s).mtimeMs <= t);
}

// The SDK logs through WASI fd_write, so plugins link AssemblyScript's WASI shim. asc resolves the shim's
// `lib` relative to the working directory, hence the chdir and relative paths.
process.chdir(root);
const WASI_SHIM = ['--config', 'node_modules/@assemblyscript/wasi-shim/asconfig.json'];

async function buildAs() {
  const asc = await import('assemblyscript/asc');
  const dir = join(root, 'plugins', 'as');
  for (const name of readdirSync(dir)) {
    if (!wanted(name) || !existsSync(join(dir, name, 'index.ts'))) continue; // lib/ holds shared sources
    const src = join('plugins', 'as', name, 'index.ts');
    const target = join(out, `${name}.wasm`);
    const extra = existsSync(join(dir, name, 'asc-flags.json'))
      ? JSON.parse(readFileSync(join(dir, name, 'asc-flags.json'), 'utf8'))
      : [];
    const srcs = [...readdirSync(join(dir, name)).map((f) => join(dir, name, f)), ...readdirSync(join(dir, 'lib')).map((f) => join(dir, 'lib', f))];
    if (upToDate(target, srcs)) continue;
    const { error, stderr } = await asc.main([
      src, '--outFile', target, ...WASI_SHIM, '--optimizeLevel', '3', '--shrinkLevel', '0', '--noAssert',
      '--runtime', 'incremental', '--use', 'abort=abort_proc_exit', '--exportRuntime', ...extra,
    ], { stdout: process.stdout, stderr: process.stderr });
    if (error) {
      console.error(`asc failed for ${name}: ${error.message}\n${stderr.toString()}`);
      process.exitCode = 1;
    } else {
      console.log(`built ${target}`);
    }
  }
}

async function buildWat() {
  const wabt = await require('wabt')();
  const dir = join(root, 'plugins', 'wat');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.wat'))) {
    const name = basename(file, '.wat');
    if (!wanted(name)) continue;
    const target = join(out, `${name}.wasm`);
    if (upToDate(target, [join(dir, file)])) continue;
    try {
      const mod = wabt.parseWat(file, readFileSync(join(dir, file), 'utf8'), { mutable_globals: true, bulk_memory: true });
      const { buffer } = mod.toBinary({});
      writeFileSync(target, buffer);
      mod.destroy();
      console.log(`built ${target}`);
    } catch (err) {
      console.error(`wat2wasm failed for ${file}: ${err.message}`);
      process.exitCode = 1;
    }
  }
}

await buildAs();
await buildWat();
