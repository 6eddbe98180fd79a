import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { pluginPath, REPO_ROOT } from '../support/plugins';

// The test kit as a user installs it: a project whose node_modules/proxy-wasm-sidecar is this package, importing
// `proxy-wasm-sidecar/testing` through the package's `exports` from plain CommonJS, from ESM, and from strict
// TypeScript (nodenext) compiled against the emitted .d.ts. The README's example is extracted and run the same
// way, so it cannot rot.
let project: string;
const plugin = pluginPath('go/add-header');

before(() => {
  project = mkdtempSync(join(tmpdir(), 'pws-user-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(REPO_ROOT, join(project, 'node_modules', 'proxy-wasm-sidecar'), 'dir');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'plugin-tests', private: true }));
});
after(() => rmSync(project, { recursive: true, force: true }));

function run(file: string): string {
  return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8', env: { ...process.env, PLUGIN: plugin } });
}

const body = (imp: string) => `${imp}
const host = await HostEmulator.load(process.env.PLUGIN, { configuration: JSON.stringify({ value: 'kit' }) });
const stream = host.stream();
const action = stream.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'example.com']], true);
const out = { action, header: stream.header('x-go-request') };
stream.complete();
await host.settle();
host.close();
console.log(JSON.stringify(out));
`;

it('works from plain CommonJS JavaScript', () => {
  writeFileSync(join(project, 'kit.cjs'), `(async () => {\n${body("const { HostEmulator } = require('proxy-wasm-sidecar/testing');")}\n})();`);
  assert.deepEqual(JSON.parse(run('kit.cjs')), { action: 'continue', header: 'kit' });
});

it('works from ESM', () => {
  writeFileSync(join(project, 'kit.mjs'), body("import { HostEmulator } from 'proxy-wasm-sidecar/testing';"));
  assert.deepEqual(JSON.parse(run('kit.mjs')), { action: 'continue', header: 'kit' });
});

it('type-checks and runs from strict TypeScript (nodenext) against the emitted declarations', () => {
  writeFileSync(join(project, 'kit.mts'), body("import { HostEmulator, type HeaderPairs } from 'proxy-wasm-sidecar/testing';\nconst _h: HeaderPairs = [];\nvoid _h;").replace('process.env.PLUGIN', 'process.env["PLUGIN"]!'));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules', '@types')], outDir: 'out', skipLibCheck: false },
    files: ['kit.mts'],
  }));
  execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(run(join('out', 'kit.mjs'))), { action: 'continue', header: 'kit' });
});

it('runs the README example as written', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const m = /<!-- example: test-kit -->\s*```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README.md has the test-kit example');
  writeFileSync(join(project, 'readme.mts'), m[1]!.replace(/'build\/plugins\//g, `'${REPO_ROOT}/build/plugins/`));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules', '@types')], outDir: 'out' },
    files: ['readme.mts'],
  }));
  execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, encoding: 'utf8' });
  const printed = run(join('out', 'readme.mjs'));
  assert.match(printed, /x-go-request: hello/);
});

it('exports the sidecar itself from the package root', () => {
  writeFileSync(join(project, 'root.cjs'), "const m = require('proxy-wasm-sidecar'); console.log(typeof m.Sidecar.start, typeof m.quickBootstrap, new m.ConfigError('x', 'a.b').message);");
  assert.equal(run('root.cjs').trim(), 'function function a.b: x');
});
