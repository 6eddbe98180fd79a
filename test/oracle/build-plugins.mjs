#!/usr/bin/env node
// Builds the oracle's own plugins (test/oracle/plugins/<name>/index.as, AssemblyScript, and <name>.wat) into
// build/plugins/oracle/<name>.wasm with the same asc flags as scripts/build-plugins.mjs, so they are built like the
// project's plugins. Skips what is up to date. The harness runs this before starting Envoy and the sidecar.
// The AssemblyScript sources are named .as so that the project's tsc (which compiles test/**/*.ts) leaves them
// alone; asc only takes .ts entries, so each is copied to build/plugins/oracle/src/<name>/index.ts first.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'test', 'oracle', 'plugins');
const out = join(root, 'build', 'plugins', 'oracle');
mkdirSync(out, { recursive: true });
process.chdir(root); // asc resolves the WASI shim's lib relative to the working directory
const require = createRequire(import.meta.url);

const upToDate = (target, sources) => existsSync(target) && sources.every((s) => statSync(s).mtimeMs <= statSync(target).mtimeMs);

const asc = await import('assemblyscript/asc');
for (const name of readdirSync(src)) {
  const dir = join(src, name);
  if (!statSync(dir).isDirectory() || !existsSync(join(dir, 'index.as'))) continue;
  const target = join(out, `${name}.wasm`);
  if (upToDate(target, readdirSync(dir).map((f) => join(dir, f)))) continue;
  const copy = join(out, 'src', name, 'index.ts');
  mkdirSync(dirname(copy), { recursive: true });
  copyFileSync(join(dir, 'index.as'), copy);
  const { error, stderr } = await asc.main([
    relative(root, copy), '--outFile', target,
    '--config', 'node_modules/@assemblyscript/wasi-shim/asconfig.json', '--optimizeLevel', '3', '--shrinkLevel', '0',
    '--noAssert', '--runtime', 'incremental', '--use', 'abort=abort_proc_exit', '--exportRuntime',
  ], { stdout: process.stdout, stderr: process.stderr });
  if (error) {
    console.error(`asc failed for ${name}: ${error.message}\n${stderr.toString()}`);
    process.exitCode = 1;
  }
}
const wabt = await require('wabt')();
for (const file of readdirSync(src).filter((f) => f.endsWith('.wat'))) {
  const target = join(out, `${basename(file, '.wat')}.wasm`);
  if (upToDate(target, [join(src, file)])) continue;
  const mod = wabt.parseWat(file, readFileSync(join(src, file), 'utf8'), { mutable_globals: true, bulk_memory: true });
  writeFileSync(target, mod.toBinary({}).buffer);
  mod.destroy();
}
