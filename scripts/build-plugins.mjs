#!/usr/bin/env node
// Builds every test/example plugin from source into build/plugins/<name>.wasm:
//   plugins/as/<name>/index.ts  -> AssemblyScript (asc) with the npm Proxy-Wasm SDK it imports
//   plugins/wat/<name>.wat      -> wabt's wat2wasm (ABI edge cases written by hand)
//   plugins/go/<sdk>/<name>/    -> build/plugins/go/<name>.wasm with Go >= 1.24 as Higress users build theirs:
//                                  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared; <sdk>/go.mod pins the SDK
// Nothing compiled is committed; `make plugins` runs this.
import { readdirSync, mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'plugins');
mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
// --check-go: only check that the Go toolchain (GO, default `go` on PATH) can build plugins/go, then exit.
const checkGoOnly = args.includes('--check-go');
const only = args.filter((a) => !a.startsWith('--'));
const GO = process.env.GO || 'go';
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

// Go >= 1.24 is the first with wasip1 -buildmode=c-shared (reactor modules with _initialize), which both Go SDKs need.
const GO_MIN = [1, 24];

function goVersion() {
  try {
    const out = execFileSync(GO, ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv() }).trim();
    const m = /^go(\d+)\.(\d+)/.exec(out);
    return m ? { text: out, major: Number(m[1]), minor: Number(m[2]) } : { text: out, major: 0, minor: 0 };
  } catch {
    return undefined;
  }
}

function goEnv() {
  // GOTOOLCHAIN=local: build with the Go that is installed, never fetch another behind the user's back.
  // GOFLAGS=-mod=readonly: go.mod/go.sum are the pins; a build never rewrites them.
  return { ...process.env, GOOS: 'wasip1', GOARCH: 'wasm', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
}

function filesUnder(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** Exits 1 with what to install unless GO is Go >= GO_MIN. */
function requireGo() {
  const v = goVersion();
  if (!v || v.major < GO_MIN[0] || (v.major === GO_MIN[0] && v.minor < GO_MIN[1])) {
    console.error(
      `plugins/go needs Go >= ${GO_MIN.join('.')} (found: ${v ? v.text : `no \`${GO}\` on PATH`}).\n` +
      'Install a current Go from https://go.dev/dl/ (Debian/Ubuntu packages are often too old for wasip1), ' +
      'put its bin/ on PATH, and run `make plugins` again.',
    );
    process.exit(1);
  }
  return v;
}

function buildGo() {
  const dir = join(root, 'plugins', 'go');
  if (!existsSync(dir)) return;
  const modules = readdirSync(dir).filter((m) => existsSync(join(dir, m, 'go.mod')));
  const jobs = [];
  for (const mod of modules) {
    const modDir = join(dir, mod);
    const shared = filesUnder(modDir).filter((f) => dirname(f) === modDir || f.includes(`${join(modDir, 'internal')}`));
    for (const name of readdirSync(modDir)) {
      const pkgDir = join(modDir, name);
      if (name === 'internal' || !statSync(pkgDir).isDirectory() || !existsSync(join(pkgDir, 'main.go'))) continue;
      if (!wanted(name) && !wanted(`go/${name}`)) continue;
      jobs.push({ mod, modDir, name, sources: [...shared, ...filesUnder(pkgDir)] });
    }
  }
  const goOut = join(out, 'go');
  mkdirSync(goOut, { recursive: true });
  const stale = jobs.filter((j) => !upToDate(join(goOut, `${j.name}.wasm`), j.sources));
  if (stale.length === 0) return;
  requireGo();
  for (const j of stale) {
    const target = join(goOut, `${j.name}.wasm`);
    try {
      execFileSync(GO, ['build', '-buildmode=c-shared', '-trimpath', '-o', target, `./${j.name}`], {
        cwd: j.modDir, env: goEnv(), stdio: ['ignore', 'inherit', 'inherit'],
      });
      console.log(`built ${target}`);
    } catch (err) {
      console.error(`go build failed for plugins/go/${j.mod}/${j.name}: ${err.message}`);
      process.exitCode = 1;
    }
  }
}

if (checkGoOnly) {
  console.log(`Go OK: ${requireGo().text}`);
  process.exit(0);
}
await buildAs();
await buildWat();
buildGo();
