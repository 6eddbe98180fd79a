import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startCli, type Run } from '../cli/shutdown-support';
import { bootstrapJson, TempDir, Upstream } from './helpers';
import { readGcTrace } from '../support/gc-trace';

// The routed path's per-request objects must die young. A closure stored on the router filter once kept its
// method's context alive with the stream; V8 then pretenured every request's objects: each scavenge promoted
// 2.5-3 MB (99% of what survived) and paused 5-6 ms, which was the sidecar's p99. Fixed, a scavenge promotes a
// few KB. This reads V8's own accounting (--trace-gc-nvp), not a clock.

const WARMUP = 3_000;
const MEASURED = 12_000;
/** Before the fix the median was 2.5-3 MB; after, 1-20 KB (with and without a plugin). */
const PROMOTED_LIMIT = 512 * 1024;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(filters: Parameters<typeof bootstrapJson>[0]['filters']): Promise<{ promoted: number; scavenges: number }> {
  const up = await Upstream.start((_req, res) => res.end('hello world\n'));
  const tmp = new TempDir();
  const file = tmp.write('router-gc.json', bootstrapJson({ filters, clusters: [{ name: 'backend', port: up.port }] }));
  const agent = new Agent({ connections: 1 });
  let run: Run | undefined;
  try {
    run = await startCli(['run', '-c', file, '--log-level', 'warn'], ['--trace-gc-nvp']);
    const port = run.port;
    const once = async (): Promise<void> => {
      const res = await request(`http://127.0.0.1:${port}/gc`, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    };
    for (let i = 0; i < WARMUP; i++) await once();
    const from = run.stdout().length;
    for (let i = 0; i < MEASURED; i++) await once();
    const measured = readGcTrace(run.stdout().slice(from)).scavenges;
    assert.ok(measured.length >= 3, `only ${measured.length} scavenges in ${MEASURED} requests: the sample says nothing`);
    return { promoted: median(measured.map((s) => s.promoted)), scavenges: measured.length };
  } finally {
    await agent.close();
    run?.child.kill('SIGTERM');
    await run?.exited;
    await up.close();
    tmp.cleanup();
  }
}

test('routed requests die young: a scavenge promotes little (no plugin)', async () => {
  const r = await measure([]);
  assert.ok(r.promoted < PROMOTED_LIMIT, `median ${r.promoted} bytes promoted per scavenge over ${r.scavenges} scavenges`);
});

test('routed requests die young with a Wasm plugin in the chain (.wat no-op)', async () => {
  const r = await measure([{ plugin: 'noop-min', name: 'wat-noop', rootId: '' }]);
  assert.ok(r.promoted < PROMOTED_LIMIT, `median ${r.promoted} bytes promoted per scavenge over ${r.scavenges} scavenges`);
});
