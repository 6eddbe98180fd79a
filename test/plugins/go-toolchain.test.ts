import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';

// `make plugins` needs Go >= 1.24 for plugins/go (wasip1 -buildmode=c-shared): a missing or too-old Go stops the
// build with what to install. GO names the toolchain (default `go` on PATH), as the build script reads it.
const dir = mkdtempSync(join(tmpdir(), 'pws-go-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function check(go: string | undefined): { status: number | null; out: string } {
  const env = { ...process.env };
  if (go === undefined) delete env['GO'];
  else env['GO'] = go;
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-plugins.mjs'), '--check-go'], { cwd: REPO_ROOT, env, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

it('stops with what to install when there is no Go', () => {
  const r = check(join(dir, 'no-such-go'));
  assert.equal(r.status, 1);
  assert.match(r.out, /plugins\/go needs Go >= 1\.24 \(found: no `.*no-such-go` on PATH\)/);
  assert.match(r.out, /Install a current Go from https:\/\/go\.dev\/dl\//);
});

it('stops and names the version when Go is too old for wasip1 c-shared', () => {
  const old = join(dir, 'go');
  writeFileSync(old, '#!/bin/sh\necho go1.21.5\n');
  chmodSync(old, 0o755);
  const r = check(old);
  assert.equal(r.status, 1);
  assert.match(r.out, /needs Go >= 1\.24 \(found: go1\.21\.5\)/);
});

it('accepts the Go on this machine', () => {
  const r = check(undefined);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^Go OK: go1\.(2[4-9]|[3-9]\d)/m);
});
