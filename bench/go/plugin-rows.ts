/**
 * The rows of the plugin benchmark (go-bench.ts) and of the profiler (bench/profile/profile.ts): one bootstrap per
 * row, the same upstream (its own process), redis-server and clusters for every row, and what a response must show
 * for the row to measure what it claims.
 */
import { request } from 'undici';
import { RedisServer } from '../../test/support/redis-server';
import { bootstrapJson, TempDir, type ClusterSpec, type FilterSpec } from '../../test/http/helpers';
import { startUpstream } from '../http/http-bench';
import type { ChildProcess } from 'node:child_process';
import type { SidecarProcess } from '../support/load';

/** Which goal of issue 13 a row's figure is held to. */
export type RowGoal = 'wat-noop' | 'header-plugin' | 'none';

export interface Row {
  readonly name: string;
  readonly filters: readonly FilterSpec[];
  readonly goal: RowGoal;
  /** The row's requests wait for a Redis round trip (its p99 is not held to the no-plugin p99). */
  readonly redis?: boolean;
  /** wrk environment (a fresh x-nonce per request for the replay-protection gate). */
  readonly wrkEnv?: Readonly<Record<string, string>>;
  /** What a response must show for the row to be measuring what it claims (checked once before measuring). */
  readonly check: (status: number, headers: Record<string, string | string[] | undefined>) => string | undefined;
  /** Request headers of that check request (made per check: a nonce must not repeat). */
  readonly checkHeaders?: () => Readonly<Record<string, string>>;
}

export const NO_PLUGIN_ROW = 'no plugin';
export const WAT_ROW = 'WAT no-op (noop-min.wat, no SDK)';
export const HIGRESS_HEADER_ROW = 'Go add-header (higress/add-header)';

const REDIS_KEY = 'bench:key';
const REDIS_VALUE = 'value-0123456789';
const REDIS_SERVICE = 'redis.static';
const REDIS_CLUSTER = 'redis-bench';

const ok200 = (status: number): string | undefined => (status === 200 ? undefined : `status ${status}`);
const withHeader = (name: string, value: string | undefined) => (status: number, headers: Record<string, string | string[] | undefined>): string | undefined =>
  ok200(status) ?? (headers[name] !== undefined && (value === undefined || headers[name] === value) ? undefined : `no ${name} header`);

export function pluginRows(redisPort: number): Row[] {
  return [
    { name: NO_PLUGIN_ROW, filters: [], goal: 'none', check: ok200 },
    // No SDK at all: what the data plane's per-filter work costs, apart from any guest code.
    { name: WAT_ROW, filters: [{ plugin: 'noop-min', name: 'wat-noop', rootId: '' }], goal: 'wat-noop', check: ok200 },
    { name: 'AssemblyScript no-op (noop.wasm)', filters: [{ plugin: 'noop', name: 'as-noop', rootId: 'noop' }], goal: 'none', check: ok200 },
    { name: 'Go no-op (higress/noop)', filters: [{ plugin: 'go/noop', name: 'go-noop', rootId: '' }], goal: 'none', check: ok200 },
    {
      name: 'Go headers (upstream/up-headers)',
      filters: [{ plugin: 'go/up-headers', name: 'go-up-headers', rootId: '' }],
      goal: 'header-plugin',
      check: withHeader('x-up-path', '/bench'),
    },
    {
      name: HIGRESS_HEADER_ROW,
      filters: [{ plugin: 'go/add-header', name: 'go-add-header', rootId: '', configuration: JSON.stringify({ value: 'v1' }) }],
      goal: 'header-plugin',
      check: withHeader('x-go-response', 'v1'),
    },
    {
      name: 'Go Redis GET (higress/bench-redis-get)',
      filters: [{
        plugin: 'go/bench-redis-get', name: 'go-redis-get', rootId: '',
        configuration: JSON.stringify({ service_name: REDIS_SERVICE, service_port: redisPort, key: REDIS_KEY }),
      }],
      goal: 'none',
      redis: true,
      check: ok200, // the plugin answers 503 itself when the GET fails
    },
    {
      // Replay protection: SET <prefix>:<nonce> 1 NX EX <ttl> per request, the request held until the reply.
      name: 'AS Redis SET NX (redis-gate)',
      filters: [{ plugin: 'redis-gate', name: 'as-redis-gate', rootId: 'redis_gate', configuration: `cluster=${REDIS_CLUSTER}\nttl=5\nprefix=bench` }],
      goal: 'none',
      redis: true,
      wrkEnv: { PWS_WRK_NONCE_HEADER: 'x-nonce' },
      check: withHeader('x-replay-check', 'passed'),
      checkHeaders: () => ({ 'x-nonce': `check-${process.pid}-${process.hrtime.bigint()}` }),
    },
  ];
}

/**
 * The items a comma-separated filter names by case-insensitive substring of their name, plus those `always` keeps;
 * all when the filter is unset or empty.
 */
export function namedIn<T extends { readonly name: string }>(items: readonly T[], filter: string | undefined, always: (item: T) => boolean = () => false): T[] {
  if (!filter) return [...items];
  const wanted = filter.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
  return items.filter((i) => always(i) || wanted.some((w) => i.name.toLowerCase().includes(w)));
}

/** Rows named (by substring) in PWS_BENCH_ROWS, comma-separated, plus the no-plugin row; all when unset. */
export function selectRows(rows: readonly Row[], filter = process.env['PWS_BENCH_ROWS']): Row[] {
  return namedIn(rows, filter, (r) => r.name === NO_PLUGIN_ROW);
}

/** The processes every row shares: redis-server (with the GET key set), the upstream, the bootstraps' temp dir. */
export class RowEnvironment {
  private constructor(
    readonly redis: RedisServer,
    private readonly upstream: { port: number; child: ChildProcess },
    private readonly tmp: TempDir,
  ) {}

  static async start(): Promise<RowEnvironment> {
    const redis = await RedisServer.start();
    const upstream = await startUpstream();
    await redis.client().set(REDIS_KEY, REDIS_VALUE);
    return new RowEnvironment(redis, upstream, new TempDir());
  }

  /** The bootstrap file of one row. */
  bootstrap(row: Row, index: number): string {
    const clusters: ClusterSpec[] = [
      { name: 'backend', port: this.upstream.port },
      // The FQDN cluster the Higress SDK names for service_name/service_port (wrapper.FQDNCluster).
      { name: `outbound|${this.redis.port}||${REDIS_SERVICE}`, port: this.redis.port },
      { name: REDIS_CLUSTER, port: this.redis.port },
    ];
    return this.tmp.write(`row-${index}.json`, bootstrapJson({ filters: row.filters, clusters, routeCluster: 'backend' }));
  }

  async stop(): Promise<void> {
    this.upstream.child.kill('SIGTERM');
    await this.redis.stop();
    this.tmp.cleanup();
  }
}

/** One request through the row's sidecar: throws unless the response shows what the row measures. */
export async function checkRow(row: Row, sidecar: { readonly port: number }): Promise<void> {
  const res = await request(`http://127.0.0.1:${sidecar.port}/bench`, { headers: { ...row.checkHeaders?.() } });
  await res.body.dump();
  const problem = row.check(res.statusCode, res.headers);
  if (problem) throw new Error(`row '${row.name}' does not do what it measures: ${problem}`);
}
