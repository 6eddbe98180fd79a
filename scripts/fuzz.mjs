#!/usr/bin/env node
// Runs the fuzz targets of test/fuzz/ for longer than CI does, with fresh random seeds, and writes every failure
// (shrunk by fast-check) into test/fuzz/corpus/<target>/found-<hash>.json, where the CI tests replay it first.
//
//   node scripts/fuzz.mjs --target resp --time 600      # 10 minutes on the RESP framer
//   node scripts/fuzz.mjs --time 120                    # every target, 120 s each
//   node scripts/fuzz.mjs --target wire --seed 1592590337 --runs 300   # reproduce a CI failure and record it
//   node scripts/fuzz.mjs --target host-generator --time 600   # the hostile-plugin generator with random seeds
//   node scripts/fuzz.mjs --target pairs --add '{"bytes":"AAAA","where":"inside","randomPtr":0}' --note '...'
//
// Needs `make build plugins` (it loads the compiled targets from dist/test/fuzz/targets/).
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Command } from 'commander';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const fc = require('fast-check');
const targetsDir = join(root, 'dist', 'test', 'fuzz', 'targets');
const harness = require(join(root, 'dist', 'test', 'fuzz', 'harness.js'));

const program = new Command()
  .option('--target <name>', 'one target (default: all)')
  .option('--time <seconds>', 'time per target', '60')
  .option('--seed <n>', 'run this seed only (then --runs inputs)')
  .option('--runs <n>', 'inputs per seed', '1000')
  .option('--add <json>', 'add this encoded input to the corpus (after checking it fails) and exit')
  .option('--note <text>', 'note stored with an added input', '')
  .option('--keep-going', 'after a failure, keep fuzzing the target with new seeds', false)
  .parse();
const opts = program.opts();

function loadTargets() {
  const out = new Map();
  for (const f of readdirSync(targetsDir).filter((n) => n.endsWith('.js'))) {
    const mod = require(join(targetsDir, f));
    for (const v of Object.values(mod)) if (v && typeof v === 'object' && typeof v.check === 'function' && typeof v.name === 'string') out.set(v.name, v);
  }
  return out;
}

const targets = loadTargets();

// The hostile-plugin generator is a test against a real sidecar rather than a fast-check target: run it with
// random seeds (PWS_FUZZ_HOST_SEEDS) and record each seed that fails, one per entry.
if (opts.target === 'host-generator') {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const run = (seeds) => spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', join(root, 'dist', 'test', 'fuzz', 'host-generator.test.js')], {
    env: { ...process.env, PWS_FUZZ_HOST_SEEDS: seeds.join(',') }, encoding: 'utf8',
  });
  const deadline = Date.now() + Number(opts.time) * 1000;
  let failed = 0;
  while (Date.now() < deadline) {
    const seeds = Array.from({ length: 4 }, () => (Math.random() * 2 ** 31) | 0);
    if (run(seeds).status === 0) continue;
    for (const seed of seeds) {
      const r = run([seed]);
      if (r.status === 0) continue;
      failed++;
      const why = (/error: '([^']*)'/.exec(r.stdout) ?? /not ok [^\n]*\n[\s\S]*?error: \|-\n\s*([^\n]*)/.exec(r.stdout) ?? [])[1] ?? 'see the test output';
      const dir = join(root, 'test', 'fuzz', 'corpus', 'host-generator');
      mkdirSync(dir, { recursive: true });
      for (const plugin of ['fuzz-host', 'fuzz-host-0-1-0']) {
        writeFileSync(join(dir, `found-${plugin}-${seed}.json`), `${JSON.stringify({ note: `seed ${seed}: ${why}`, input: { plugin, seed } }, null, 1)}\n`);
      }
      console.log(`host-generator: seed ${seed} fails: ${why}`);
    }
  }
  process.exit(failed > 0 ? 1 : 0);
}
const chosen = opts.target ? [targets.get(opts.target)] : [...targets.values()];
if (chosen.some((t) => !t)) {
  console.error(`unknown target ${opts.target}; known: ${[...targets.keys()].join(', ')}`);
  process.exit(2);
}

/** One corpus entry per kind of failure: the error's first line with its numbers blanked out. */
const signature = (text) => text.replace(/^seed \d+: /, '').split('\n')[0].replace(/\d+/g, '#').slice(0, 160);
const known = new Map();
function knownSignatures(target) {
  if (!known.has(target.name)) known.set(target.name, new Set(harness.readCorpus(target.name).map((e) => signature(e.note))));
  return known.get(target.name);
}

function record(target, input, note) {
  const seen = knownSignatures(target);
  if (seen.has(signature(note))) {
    console.log('  (a failure of a kind the corpus already holds; not added)');
    return;
  }
  seen.add(signature(note));
  try {
    const file = harness.addToCorpus(target, input, note);
    console.log(`  -> test/fuzz/corpus/${target.name}/${file}`);
  } catch (err) {
    console.log(`  (not stored: ${err.message}; rerun with --seed to reproduce)`);
  }
}

let failures = 0;
for (const target of chosen) {
  if (target.setup) await target.setup();
  try {
    if (opts.add) {
      const input = target.decode(JSON.parse(opts.add));
      try {
        target.check(input);
        console.log(`${target.name}: the input passes; adding it as a seed`);
        console.log(`  -> test/fuzz/corpus/${target.name}/${harness.addToCorpus(target, input, opts.note, 'seed')}`);
      } catch (err) {
        console.log(`${target.name}: the input fails: ${err.message.split('\n')[0]}`);
        console.log(`  -> test/fuzz/corpus/${target.name}/${harness.addToCorpus(target, input, opts.note || err.message.split('\n')[0])}`);
      }
      continue;
    }
    const deadline = Date.now() + Number(opts.time) * 1000;
    let runs = 0;
    let seeds = 0;
    do {
      const seed = opts.seed !== undefined ? Number(opts.seed) : (Math.random() * 2 ** 31) | 0;
      const details = fc.check(fc.property(target.arbitrary, (input) => target.check(input)), {
        seed,
        numRuns: Number(opts.runs),
        ...(opts.seed === undefined ? { interruptAfterTimeLimit: Math.max(1, deadline - Date.now()) } : {}),
      });
      runs += details.numRuns;
      seeds++;
      if (details.failed) {
        failures++;
        console.log(harness.describeFailure(target, details).split('\n').slice(0, 3).join('\n').slice(0, 2000));
        record(target, details.counterexample[0], `seed ${seed}: ${String(details.errorInstance?.message ?? details.errorInstance).split('\n')[0].slice(0, 300)}`);
        if (!opts.keepGoing) break;
      }
    } while (opts.seed === undefined && Date.now() < deadline);
    console.log(`${target.name}: ${runs} inputs over ${seeds} seed(s)`);
  } finally {
    target.teardown?.();
  }
}
process.exit(failures > 0 ? 1 : 0);
