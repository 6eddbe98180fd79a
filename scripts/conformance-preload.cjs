'use strict';
// Loaded with `--require` (through NODE_OPTIONS) into every Node process of a `make conformance` run, so each
// process's host-call recording (src/abi/host-call-recorder.ts, env PWS_HOST_CALL_RECORD) lands in a directory
// named after the test file it belongs to. The first process below the runner that runs a file of this checkout
// is a test file's process (node --test spawns one per file); it claims the file, and every process it starts
// (a sidecar CLI, an example, a worker thread) inherits the claim with the environment. Recording the script
// alone would not do: a child sidecar's script is dist/src/cli.js, not the test that started it.
const { isAbsolute, join, relative, sep } = require('node:path');

const recordRoot = process.env.PWS_CONFORMANCE_DIR;
const repoRoot = process.env.PWS_CONFORMANCE_REPO;
const script = process.argv[1];
const isRunner = process.execArgv.includes('--test');

if (recordRoot && repoRoot && !process.env.PWS_CONFORMANCE_FILE && !isRunner && script && isAbsolute(script)) {
  const rel = relative(repoRoot, script);
  if (!rel.startsWith(`..${sep}`) && !isAbsolute(rel)) {
    process.env.PWS_CONFORMANCE_FILE = rel;
    process.env.PWS_HOST_CALL_RECORD = join(recordRoot, encodeURIComponent(rel));
  }
}
