// Renders the sidecar's bootstrap for one pod, as pilot-agent renders istio-proxy's: every ${NAME} in the
// template is replaced by the environment variable NAME (the pod's downward API values), JSON-escaped so that
// it is safe inside the template's double-quoted YAML strings. ${LABELS_JSON} becomes the pod's labels as a
// JSON object (valid YAML), read from a downward API `metadata.labels` file given with --labels.
//
//   node render-bootstrap.mjs <template> <output> [--labels <file>]
//
// A variable that is not set is an error naming it: a bootstrap with an empty node id or namespace would
// connect and be configured as some other workload.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

function fail(message) {
  process.stderr.write(`render-bootstrap: ${message}\n`);
  process.exit(2);
}

/** The downward API's labels file: one `key="value"` a line, the value quoted as Go's strconv.Quote does. */
function parseLabels(text) {
  const labels = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) fail(`labels: not key="value": ${line}`);
    try {
      labels[line.slice(0, eq)] = JSON.parse(line.slice(eq + 1));
    } catch {
      fail(`labels: bad value: ${line}`);
    }
  }
  return labels;
}

const args = process.argv.slice(2);
const labelsAt = args.indexOf('--labels');
const labelsFile = labelsAt === -1 ? undefined : args[labelsAt + 1];
if (labelsAt !== -1) args.splice(labelsAt, 2);
const [template, output] = args;
if (!template || !output || args.length !== 2 || (labelsAt !== -1 && !labelsFile)) {
  fail('usage: node render-bootstrap.mjs <template> <output> [--labels <file>]');
}

const values = { ...process.env };
if (labelsFile) values.LABELS_JSON = JSON.stringify(parseLabels(readFileSync(labelsFile, 'utf8')));
const missing = new Set();
const text = readFileSync(template, 'utf8').replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name) => {
  const v = values[name];
  if (v === undefined || v === '') {
    missing.add(name);
    return '';
  }
  return name.endsWith('_JSON') ? v : JSON.stringify(v).slice(1, -1);
});
if (missing.size > 0) fail(`not set: ${[...missing].join(', ')}`);
// Write-then-rename: the sidecar never sees half a file.
writeFileSync(`${output}.tmp`, text);
renameSync(`${output}.tmp`, output);
