#!/usr/bin/env node
// `make conformance`: docs/conformance.md, the per-SDK conformance table. Runs the test suite (node --test over
// dist/test, as `make test` does) with host-call recording on (PWS_HOST_CALL_RECORD, src/abi/host-call-recorder.ts),
// then writes, for every host function of HOST_FUNCTIONS (src/abi/host-functions.ts) and every plugin SDK, how
// often the SDK's plugins called it in the tests, which statuses it returned, and whether every test file behind
// those calls passed. Nothing in the table is written by hand: functions come from HOST_FUNCTIONS, modules are
// mapped to plugins by the sha256 of build/plugins/**/*.wasm, plugins to SDKs by their source folder.
//
//   node scripts/gen-conformance.mjs [--out FILE] [--concurrency N] [--keep] [--from DIR] [TEST_FILE_OR_DIR ...]
//
// Without test files it runs dist/test/ (the whole suite, minutes); name some (dist/test/go/go-sdk-smoke.test.js)
// to try it on a subset; the page then says it covers a subset and goes to build/conformance-subset.md unless --out. --from DIR re-renders from a kept recording (--keep)
// without running anything. Exit status 1 when a test file failed (the page is written first and shows which).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const rel = (p) => relative(root, p);

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string' },
    concurrency: { type: 'string', default: process.env.TEST_CONCURRENCY ?? '2' },
    keep: { type: 'boolean', default: false },
    from: { type: 'string' },
  },
});

/** The SDKs, in column order; `plugin` maps a build output to its source (or undefined when it is not theirs). */
const SDKS = [
  { id: 'higress-go', title: 'Higress Go SDK', folder: 'plugins/go/higress', source: (n, go) => goSource('higress', n, go) },
  { id: 'upstream-go', title: 'upstream Go SDK', folder: 'plugins/go/upstream', source: (n, go) => goSource('upstream', n, go) },
  { id: 'as', title: 'AssemblyScript', folder: 'plugins/as', source: (n, go) => (!go && existsSync(join(root, 'plugins', 'as', n, 'index.ts')) ? `plugins/as/${n}/` : undefined) },
  { id: 'wat', title: 'WAT', folder: 'plugins/wat', source: (n, go) => (!go && existsSync(join(root, 'plugins', 'wat', `${n}.wat`)) ? `plugins/wat/${n}.wat` : undefined) },
];
/** Modules no plugin source builds (made inside a test, or a stale build output): shown, never dropped. */
const OTHER = { id: 'other', title: 'other modules', folder: '(built inside tests)' };

function goSource(sdk, name, go) {
  return go && existsSync(join(root, 'plugins', 'go', sdk, name, 'main.go')) ? `plugins/go/${sdk}/${name}/` : undefined;
}

function need(file, hint) {
  if (!existsSync(file)) {
    console.error(`${rel(file)} is missing: run \`${hint}\` first (\`make conformance\` does)`);
    process.exit(2);
  }
}

need(join(root, 'dist', 'src', 'abi', 'host-functions.js'), 'make build');
need(join(root, 'build', 'plugins'), 'make plugins');
const { HOST_FUNCTIONS } = require(join(root, 'dist', 'src', 'abi', 'host-functions.js'));
const { WASM_RESULT_NAMES } = require(join(root, 'dist', 'src', 'abi', 'enums.js'));
const { ALL_ABIS, detectAbiVersion } = require(join(root, 'dist', 'src', 'wasm', 'abi-version.js'));

// ---------- run the tests ----------

async function runTests(recordDir, files) {
  const events = join(recordDir, 'events.jsonl');
  const args = [
    '--test', `--test-concurrency=${opts.concurrency}`, '--test-timeout=120000',
    `--test-reporter=${join(root, 'scripts', 'conformance-reporter.mjs')}`, `--test-reporter-destination=${events}`,
    '--test-reporter=dot', '--test-reporter-destination=stderr',
    ...files,
  ];
  const env = { ...process.env };
  delete env.PWS_HOST_CALL_RECORD;
  delete env.PWS_CONFORMANCE_FILE;
  env.PWS_CONFORMANCE_DIR = join(recordDir, 'calls');
  env.PWS_CONFORMANCE_REPO = root;
  env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --require ${join(root, 'scripts', 'conformance-preload.cjs')}`.trim();
  console.error(`conformance: node ${args.filter((a) => !a.startsWith('--test-reporter')).join(' ')} (recording in ${recordDir})`);
  const code = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (c, signal) => resolve(signal ? `signal ${signal}` : c));
  });
  console.error(`\nconformance: test run ended (${code === 0 ? 'all passed' : `exit ${code}`})`);
}

/** Per test file (repo-relative path of the .js that ran): top-level tests passed, failed, skipped; failures. */
function readResults(recordDir) {
  const file = join(recordDir, 'events.jsonl');
  if (!existsSync(file)) throw new Error(`${file} is missing: the test run reported nothing`);
  const results = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line);
    if (!e.file) continue;
    const key = rel(e.file);
    let r = results.get(key);
    if (!r) results.set(key, (r = { passed: 0, failed: 0, skipped: 0, failures: [] }));
    if (!e.ok && e.failureType !== 'subtestsFailed') r.failures.push(e.name === e.file ? `file: ${e.message}` : `${e.name}: ${e.message}`);
    if (e.nesting !== 0) continue;
    if (!e.ok) r.failed++;
    else if (e.skip || e.todo) r.skipped++;
    else r.passed++;
  }
  for (const r of results.values()) r.ok = r.failed === 0 && r.failures.length === 0;
  return results;
}

/** Recordings, merged per test file: Map<testFile, Map<sha256, Map<function, Map<statusKey, count>>>>. */
function readRecordings(recordDir) {
  const byFile = new Map();
  const callsDir = join(recordDir, 'calls');
  if (!existsSync(callsDir)) return byFile;
  for (const dir of readdirSync(callsDir)) {
    const testFile = decodeURIComponent(dir);
    const modules = byFile.get(testFile) ?? new Map();
    byFile.set(testFile, modules);
    for (const f of readdirSync(join(callsDir, dir)).filter((n) => n.startsWith('calls-') && n.endsWith('.json'))) {
      const rec = JSON.parse(readFileSync(join(callsDir, dir, f), 'utf8'));
      for (const [sha, fns] of Object.entries(rec.modules)) {
        const m = modules.get(sha) ?? new Map();
        modules.set(sha, m);
        for (const [fn, statuses] of Object.entries(fns)) {
          const s = m.get(fn) ?? new Map();
          m.set(fn, s);
          for (const [k, n] of Object.entries(statuses)) s.set(k, (s.get(k) ?? 0) + n);
        }
      }
    }
  }
  return byFile;
}

// ---------- plugins ----------

function wasmFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...wasmFiles(p));
    else if (entry.name.endsWith('.wasm')) out.push(p);
  }
  return out.sort();
}

/** sha256 -> { name, sdk, source, abi, wasm } for every built plugin. */
function indexPlugins() {
  const bySha = new Map();
  const buildDir = join(root, 'build', 'plugins');
  for (const wasm of wasmFiles(buildDir)) {
    const bytes = readFileSync(wasm);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const go = rel(dirname(wasm)) === join('build', 'plugins', 'go');
    const name = basename(wasm, '.wasm');
    let sdk = OTHER;
    let source;
    for (const s of SDKS) {
      source = s.source(name, go);
      if (source) {
        sdk = s;
        break;
      }
    }
    let abi;
    try {
      abi = detectAbiVersion(new WebAssembly.Module(bytes));
    } catch {
      abi = 'none';
    }
    bySha.set(sha, { name: go ? `go/${name}` : name, sdk, source: source ?? `${rel(wasm)} (no source under plugins/)`, abi, wasm: rel(wasm) });
  }
  return bySha;
}

// ---------- aggregate ----------

/**
 * Host functions whose i32 result is not a proxy_status_t: the requirements note's Redis variant returns a token,
 * a guest pointer or -1, the cpp-host extras return a value or nothing. Their results are shown as values.
 */
const returnsStatus = (f) => f.result === 'i32' && f.origin !== 'note-variant' && f.origin !== 'cpp-host';

function statusLabel(f, key) {
  if (key === 'void') return 'no result';
  if (!returnsStatus(f)) return Number(key) < 0 ? String(key) : 'value';
  return WASM_RESULT_NAMES[Number(key)] ?? `status ${key}`;
}

function aggregate(recordings, plugins, results) {
  const fnByName = new Map(HOST_FUNCTIONS.map((f) => [f.name, f]));
  // cells: `${fn}\0${sdk}` -> { calls, statuses: Map<label, n>, files: Set }
  const cells = new Map();
  const byAbi = new Map(); // `${fn}\0${abi}` -> calls
  const unknownFns = new Map(); // recorded names the table does not have (should never happen)
  const used = new Map(); // sha -> { plugin, files: Set, fns: Set, calls }
  for (const [testFile, modules] of recordings) {
    for (const [sha, fns] of modules) {
      const plugin = plugins.get(sha) ?? { name: `sha256:${sha.slice(0, 12)}`, sdk: OTHER, source: 'not under build/plugins', abi: '?', wasm: '' };
      const u = used.get(sha) ?? { plugin, files: new Set(), fns: new Set(), calls: 0 };
      used.set(sha, u);
      u.files.add(testFile);
      for (const [fn, statuses] of fns) {
        const f = fnByName.get(fn);
        if (!f) {
          unknownFns.set(fn, (unknownFns.get(fn) ?? 0) + [...statuses.values()].reduce((a, b) => a + b, 0));
          continue;
        }
        u.fns.add(fn);
        const key = `${fn}\0${plugin.sdk.id}`;
        const cell = cells.get(key) ?? { calls: 0, statuses: new Map(), files: new Set() };
        cells.set(key, cell);
        cell.files.add(testFile);
        for (const [k, n] of statuses) {
          cell.calls += n;
          u.calls += n;
          const label = statusLabel(f, k);
          cell.statuses.set(label, (cell.statuses.get(label) ?? 0) + n);
          const ak = `${fn}\0${plugin.abi}`;
          byAbi.set(ak, (byAbi.get(ak) ?? 0) + n);
        }
      }
    }
  }
  const fileOk = (file) => results.get(file)?.ok ?? false;
  return { cells, byAbi, unknownFns, used, fileOk };
}

// ---------- render ----------

const fmt = (n) => n.toLocaleString('en-US');
const srcOf = (file) => {
  const ts = file.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  return existsSync(join(root, ts)) ? ts : file;
};

function cellText(cell, fileOk) {
  if (!cell) return '';
  const statuses = [...cell.statuses].sort((a, b) => b[1] - a[1]).map(([l, n]) => `${l} ${fmt(n)}`).join(', ');
  const failed = [...cell.files].filter((f) => !fileOk(f));
  const verdict = failed.length === 0 ? `pass (${cell.files.size} file${cell.files.size === 1 ? '' : 's'})` : `**FAIL** (${failed.length} of ${cell.files.size} files)`;
  return `${fmt(cell.calls)}: ${statuses}; ${verdict}`;
}

function render({ cells, byAbi, unknownFns, used, fileOk }, plugins, results, recordings, subset) {
  const columns = [...SDKS, ...(([...used.values()].some((u) => u.plugin.sdk === OTHER)) ? [OTHER] : [])];
  const lines = [];
  const out = (s = '') => lines.push(s);
  const files = [...results.keys()].sort();
  const failedFiles = files.filter((f) => !results.get(f).ok);
  out('# Host-function conformance per plugin SDK');
  out();
  out('Generated by `make conformance` (scripts/gen-conformance.mjs); do not edit by hand. The test suite ran with');
  out('host-call recording on (`PWS_HOST_CALL_RECORD`); each recorded call is attributed to the plugin module that made');
  out('it (by the sha256 of build/plugins/**/*.wasm), the plugin to its SDK by its source folder, and the call to the');
  out('test file whose processes made it (sidecar child processes included). A cell reads');
  out('`calls: statuses returned; pass/FAIL (test files behind those calls)`; an empty cell means no plugin of that SDK');
  out('called the function in the tests. Statuses are WasmResult names (src/abi/enums.ts).');
  out();
  out(`- Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${process.version}, ${subset ? `**a subset**: ${subset.join(', ')}` : '`dist/test/` (the files `make test` runs)'}`);
  out(`- Test files: ${files.length}, passed ${files.length - failedFiles.length}, failed ${failedFiles.length}${failedFiles.length ? ` (${failedFiles.map(srcOf).join(', ')})` : ''}`);
  out(`- Host functions in HOST_FUNCTIONS: ${HOST_FUNCTIONS.length}; exercised by some plugin: ${HOST_FUNCTIONS.filter((f) => columns.some((c) => cells.has(`${f.name}\0${c.id}`))).length}`);
  out();

  out('## Summary per SDK');
  out();
  out('| SDK | source folder | plugins built | plugins exercised | host functions called | calls | test files | all passed |');
  out('|---|---|---:|---:|---:|---:|---:|---|');
  for (const c of columns) {
    const built = [...plugins.values()].filter((p) => p.sdk === c).length;
    const mine = [...used.values()].filter((u) => u.plugin.sdk === c);
    const fns = HOST_FUNCTIONS.filter((f) => cells.has(`${f.name}\0${c.id}`)).length;
    const calls = mine.reduce((a, u) => a + u.calls, 0);
    const tf = new Set(mine.flatMap((u) => [...u.files]));
    const bad = [...tf].filter((f) => !fileOk(f)).length;
    out(`| ${c.title} | ${c.folder} | ${c === OTHER ? '-' : built} | ${mine.length} | ${fns} | ${fmt(calls)} | ${tf.size} | ${tf.size === 0 ? '-' : bad === 0 ? 'yes' : `**no** (${bad} failed)`} |`);
  }
  out();

  out('## Host function x SDK');
  out();
  out(`| host function | origin | ABIs | ${columns.map((c) => c.title).join(' | ')} |`);
  out(`|---|---|---|${columns.map(() => '---').join('|')}|`);
  for (const f of HOST_FUNCTIONS) {
    const abis = f.abis.length === ALL_ABIS.length ? 'all' : f.abis.join(', ');
    out(`| \`${f.name}\` | ${f.origin} | ${abis} | ${columns.map((c) => cellText(cells.get(`${f.name}\0${c.id}`), fileOk)).join(' | ')} |`);
  }
  out();
  const unexercised = HOST_FUNCTIONS.filter((f) => !columns.some((c) => cells.has(`${f.name}\0${c.id}`)));
  out(`Not called by any plugin in these tests: ${unexercised.length === 0 ? 'none' : unexercised.map((f) => `\`${f.name}\``).join(', ')}.`);
  if (unknownFns.size > 0) {
    out();
    out(`Recorded but not in HOST_FUNCTIONS (a recorder or table bug): ${[...unknownFns].map(([n, c]) => `\`${n}\` (${c})`).join(', ')}.`);
  }
  out();

  const abisSeen = ALL_ABIS.filter((a) => [...used.values()].some((u) => u.plugin.abi === a));
  out('## Calls per ABI marker of the calling module');
  out();
  out('The same calls by the `proxy_abi_version_*` marker the calling module exports (all SDKs together); `-` where');
  out('the function is not offered to that ABI.');
  out();
  out(`| host function | ${abisSeen.join(' | ')} |`);
  out(`|---|${abisSeen.map(() => '---:').join('|')}|`);
  for (const f of HOST_FUNCTIONS) {
    const row = abisSeen.map((a) => (f.abis.includes(a) ? fmt(byAbi.get(`${f.name}\0${a}`) ?? 0) : '-'));
    if (row.every((v) => v === '0' || v === '-')) continue;
    out(`| \`${f.name}\` | ${row.join(' | ')} |`);
  }
  out();
  out('Functions no module called are left out of this table.');
  out();

  out('## Plugins per SDK');
  for (const c of columns) {
    out();
    out(`### ${c.title}`);
    out();
    out('| plugin | source | ABI | sha256 | host functions called | calls | test files (pass/FAIL) |');
    out('|---|---|---|---|---:|---:|---|');
    const mine = c === OTHER ? [] : [...plugins.entries()].filter(([, p]) => p.sdk === c);
    const rows = [...mine.map(([sha, p]) => ({ sha, p, u: used.get(sha) })), ...[...used.entries()].filter(([sha, u]) => u.plugin.sdk === c && !mine.some(([s]) => s === sha)).map(([sha, u]) => ({ sha, p: u.plugin, u }))];
    rows.sort((a, b) => a.p.name.localeCompare(b.p.name));
    for (const { sha, p, u } of rows) {
      const tf = u ? [...u.files].sort().map((f) => `${srcOf(f)} ${fileOk(f) ? 'pass' : '**FAIL**'}`).join('<br>') : 'not loaded by any test';
      out(`| ${p.name} | ${p.source} | ${p.abi} | \`${sha.slice(0, 12)}\` | ${u ? u.fns.size : 0} | ${u ? fmt(u.calls) : 0} | ${tf} |`);
    }
  }
  out();

  out('## Test files');
  out();
  out('| test file | top-level tests passed | failed | skipped | plugin modules that called the host |');
  out('|---|---:|---:|---:|---:|');
  for (const f of files) {
    const r = results.get(f);
    out(`| ${srcOf(f)} | ${r.passed} | ${r.failed} | ${r.skipped} | ${recordings.get(f)?.size ?? 0} |`);
  }
  const orphans = [...recordings.keys()].filter((f) => !results.has(f));
  if (orphans.length > 0) {
    out();
    out(`Recordings from files the runner reported no result for (counted as not passed): ${orphans.map(srcOf).join(', ')}.`);
  }
  if (failedFiles.length > 0) {
    out();
    out('### Failures');
    out();
    for (const f of failedFiles) for (const m of results.get(f).failures) out(`- ${srcOf(f)}: ${m.replace(/\|/g, '\\|')}`);
  }
  out();
  return { text: lines.join('\n'), failedFiles };
}

// ---------- main ----------

const subset = positionals.length > 0 ? positionals : undefined;
// A subset never overwrites the committed page unless asked to.
opts.out ??= subset ? join(root, 'build', 'conformance-subset.md') : join(root, 'docs', 'conformance.md');
let recordDir = opts.from;
if (recordDir && !existsSync(join(recordDir, 'events.jsonl'))) {
  console.error(`--from ${recordDir}: not a kept recording (no events.jsonl); keep one with --keep`);
  process.exit(2);
}
if (!recordDir) {
  recordDir = mkdtempSync(join(tmpdir(), 'pws-conformance-'));
  const files = subset ?? [join('dist', 'test') + '/'];
  for (const f of files) if (!existsSync(join(root, f)) || (!statSync(join(root, f)).isFile() && !statSync(join(root, f)).isDirectory())) throw new Error(`no such test file or directory: ${f}`);
  await runTests(recordDir, files);
}
try {
  const results = readResults(recordDir);
  const recordings = readRecordings(recordDir);
  const plugins = indexPlugins();
  const agg = aggregate(recordings, plugins, results);
  const { text, failedFiles } = render(agg, plugins, results, recordings, subset);
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, text);
  console.error(`conformance: wrote ${rel(opts.out)} (${results.size} test files, ${agg.used.size} plugin modules recorded)`);
  if (failedFiles.length > 0) {
    console.error(`conformance: ${failedFiles.length} test file(s) failed: ${failedFiles.map(srcOf).join(', ')}`);
    process.exitCode = 1;
  }
} finally {
  if (opts.keep || opts.from) console.error(`conformance: recording kept in ${recordDir}`);
  else rmSync(recordDir, { recursive: true, force: true });
}
