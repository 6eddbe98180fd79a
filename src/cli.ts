#!/usr/bin/env node
import { WASM_LIMIT_ENV, wasmLimitDefaults } from './wasm/limits-config';
import { applyWasmTieringBudget } from './wasm/tiering';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseYaml, toYaml } from './config/yaml';
import type { LevelWithSilent } from 'pino';
import { ConfigError, SidecarError } from './common/errors';
import { loadSidecarConfig, type SidecarConfig } from './http/listener-config';
import { Sidecar } from './main';
import {
  DEFAULT_ADMIN, DEFAULT_LISTEN, parseClusterFlag, parseHostPort, parseUpstreamFlag, quickBootstrap, type QuickPlugin,
} from './config/quick-bootstrap';
import { readWasmPlugins } from './config/wasm-plugin-resource';
import { refuseNonBootstrap } from './config/document-kind';
import { collectConfigErrors } from './config/error-collector';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** Config checks beyond parsing: every Wasm module must be readable and compile. */
export function validateConfig(file: string): SidecarConfig {
  refuseNonBootstrap(file);
  const config = loadSidecarConfig(file);
  config.listeners.forEach((l) => l.wasmFilters.forEach((f) => {
    const codePath = `${f.path}.typed_config.config.vm_config.code.local`;
    let bytes: Buffer;
    if (f.code.kind === 'file') {
      try {
        bytes = readFileSync(f.code.filename);
      } catch (err) {
        throw new ConfigError(`cannot read ${f.code.filename}: ${(err as Error).message}`, `${codePath}.filename`, { cause: err });
      }
    } else {
      bytes = f.code.bytes;
    }
    if (!WebAssembly.validate(bytes)) throw new ConfigError('not a valid WebAssembly module', `${codePath}.${f.code.kind === 'file' ? 'filename' : 'inline_bytes'}`);
  }));
  return config;
}

/** `--plugin` and the flags after it that describe it, in command-line order (commander calls parsers in order). */
interface PluginFlags {
  file: string;
  config?: string;
  rootId?: string;
  vmId?: string;
  name?: string;
  failOpen?: boolean;
  env: Record<string, string>;
}

/**
 * A plugin's configuration from `--plugin-config`: JSON or YAML text, or a file (a path that exists, or `@path`).
 * Higress plugins parse JSON, so YAML is converted; the text is validated here so a typo fails before start.
 */
export function pluginConfigText(value: string, what: string): string {
  let text = value;
  let source = 'text';
  const asFile = value.startsWith('@') ? value.slice(1) : existsSync(value) && ['.json', '.yaml', '.yml'].includes(extname(value)) ? value : undefined;
  if (asFile !== undefined) {
    try {
      text = readFileSync(asFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${asFile}: ${(err as Error).message}`, what, { cause: err });
    }
    source = asFile;
  }
  if (text.trim() === '') return '';
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${source} is neither JSON nor YAML: ${(err as Error).message}`, what, { cause: err });
  }
  // A plain word is a YAML string: plugins that take free text (the upstream SDK's examples) get it verbatim.
  return typeof parsed === 'string' ? text : JSON.stringify(parsed);
}

function quickPlugins(flags: readonly PluginFlags[]): QuickPlugin[] {
  return flags.map((f, i) => {
    const what = `--plugin #${i + 1} (${f.file})`;
    const base = f.file.replace(/^.*[\\/]/, '').replace(/\.wasm$/, '');
    const name = f.name ?? base;
    return {
      name,
      file: resolve(f.file),
      configuration: f.config === undefined ? '' : pluginConfigText(f.config, `${what} --plugin-config`),
      rootId: f.rootId ?? '',
      vmId: f.vmId ?? name,
      failOpen: f.failOpen ?? false,
      environment: f.env,
      origin: what,
    };
  });
}

function describe(err: unknown): string {
  if (err instanceof SidecarError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

interface RunOptions {
  config?: string;
  wasmPlugin?: string[];
  labels?: string;
  upstream?: string;
  cluster?: string[];
  listen: string;
  admin: string;
  routeTimeout: string;
  printBootstrap?: boolean;
  plugin?: string;
  logLevel: LevelWithSilent;
  concurrency: number;
  drainTimeoutMs: number;
  shutdownGraceMs: number;
  wasmMemoryLimit?: number;
  wasmCallDeadline?: number;
  wasmStartDeadline?: number;
}

function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  const labels: Record<string, string> = {};
  for (const kv of text.split(',').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new ConfigError(`expected k=v, got '${kv}'`, '--labels');
    labels[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return labels;
}

/** The bootstrap the flags describe, or undefined when -c names one (mixing both is an error). */
export function madeBootstrap(opts: RunOptions, plugins: readonly PluginFlags[]): Record<string, unknown> | undefined {
  const quickFlags = plugins.length > 0 || (opts.wasmPlugin?.length ?? 0) > 0 || opts.upstream !== undefined || (opts.cluster?.length ?? 0) > 0;
  if (opts.config !== undefined) {
    if (quickFlags) throw new ConfigError('-c runs that bootstrap as it is; --plugin, --wasm-plugin, --upstream and --cluster make one instead: give one or the other', '-c');
    return undefined;
  }
  if (plugins.length === 0 && (opts.wasmPlugin?.length ?? 0) === 0) {
    throw new ConfigError('nothing to run: give -c <bootstrap>, or --plugin <file.wasm> / --wasm-plugin <file.yaml>', 'run');
  }
  const fromResources = readWasmPlugins(opts.wasmPlugin ?? [], { labels: parseLabels(opts.labels) });
  return quickBootstrap({
    listen: parseHostPort(opts.listen, '--listen'),
    admin: parseHostPort(opts.admin, '--admin'),
    upstream: opts.upstream === undefined ? undefined : parseUpstreamFlag(opts.upstream),
    clusters: (opts.cluster ?? []).map(parseClusterFlag),
    plugins: [...quickPlugins(plugins), ...fromResources],
    routeTimeout: opts.routeTimeout,
  });
}

/** Default of --shutdown-grace-ms: what shutdown may take past the drain time (closing pools, workers that outlive their drain). */
export const SHUTDOWN_GRACE_MS = 3000;
/** The process's own deadline failed (its event loop is blocked, e.g. by a guest that loops): a thread ends it this much later. */
const WATCHDOG_EXTRA_MS = 2000;
/** Exit codes, as a shell reports a process ended by the signal (128 + its number), for the second signal. */
const SIGNAL_EXIT_CODES: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };
/** Exit code when the shutdown failed or ran past its deadline. */
const EXIT_SHUTDOWN_FAILED = 1;

/**
 * Shutdown always ends. A signal while the sidecar starts exits at once (130 / 143). The first SIGTERM or SIGINT drains (Sidecar.stop) and the process exits 0 when it is
 * done, or 1 once the drain time plus the grace (--shutdown-grace-ms) has passed, whatever a plugin, an upstream or a client
 * connection is still doing; a second signal exits at once (130 / 143). A watchdog thread, started with the
 * drain, ends the process even when its event loop is blocked and no timer can fire. Worker threads end with the
 * process; the sidecar starts no child processes. Exit handlers (the temporary bootstrap's removal) run.
 */
function exitOnSignals(started: Promise<Sidecar | undefined>, drainTimeoutMs: number, graceMs: number): void {
  let sidecar: Sidecar | undefined;
  let draining = false;
  void started.then((s) => { sidecar = s; });
  const onSignal = (signal: NodeJS.Signals): void => {
    // Still starting: nothing serves yet, so there is nothing to drain.
    if (!sidecar) process.exit(SIGNAL_EXIT_CODES[signal] ?? EXIT_SHUTDOWN_FAILED);
    if (draining) {
      process.stderr.write(`${signal} during the drain: exiting now\n`);
      process.exit(SIGNAL_EXIT_CODES[signal] ?? EXIT_SHUTDOWN_FAILED);
    }
    draining = true;
    const deadlineMs = drainTimeoutMs + graceMs;
    sidecar.logger.info({ signal, drainTimeoutMs }, 'draining');
    // unref: a shutdown that finishes first exits through stop() below, not through these.
    setTimeout(() => {
      process.stderr.write(`shutdown did not finish within ${deadlineMs} ms (drain ${drainTimeoutMs} ms + grace ${graceMs} ms): exiting\n`);
      process.exit(EXIT_SHUTDOWN_FAILED);
    }, deadlineMs).unref();
    startShutdownWatchdog(deadlineMs + WATCHDOG_EXTRA_MS);
    sidecar.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${describe(err)}\n`);
        process.exit(EXIT_SHUTDOWN_FAILED);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * A thread of its own that kills the process after `ms`: the last resort for a main thread that cannot run its
 * own deadline timer. It writes with a direct write(2), since a worker's process.stderr goes through the main thread.
 */
function startShutdownWatchdog(ms: number): void {
  const code = `const { writeSync } = require('node:fs');
const { workerData } = require('node:worker_threads');
setTimeout(() => {
  writeSync(2, 'shutdown watchdog: the main thread did not exit within ' + workerData.ms + ' ms; killing the process\\n');
  process.kill(process.pid, 'SIGKILL');
}, workerData.ms);`;
  new Worker(code, { eval: true, workerData: { ms }, stdout: false, stderr: false }).unref();
}

export function buildCli(): Command {
  const program = new Command('proxy-wasm-sidecar')
    .description('Runs Higress Proxy-Wasm plugins on HTTP traffic, configured by an Envoy v3 bootstrap')
    .exitOverride();

  program
    .command('validate')
    .description('check a bootstrap (exit 0 if it would run, 1 with the offending field path otherwise)')
    .requiredOption('-c, --config <file>', 'Envoy v3 bootstrap (YAML or JSON)')
    .action((opts: { config: string }) => {
      // Every error is reported, not only the first: the decoder's field errors, and each bad listener, virtual
      // host, route and filter; what remains (checks across the whole file) reports the first it finds.
      const { value: config, errors, thrown } = collectConfigErrors(() => validateConfig(opts.config));
      const all = [...errors.map(describe), ...(thrown === undefined ? [] : [describe(thrown)])];
      const unique = [...new Set(all)];
      if (config && unique.length === 0) {
        const filters = config.listeners.reduce((n, l) => n + l.wasmFilters.length, 0);
        const remote = config.listeners.reduce((n, l) => n + l.remoteWasmFilters.length, 0);
        const remoteNote = remote > 0 ? ` (+${remote} with code.remote, fetched at run time, not compiled offline)` : '';
        process.stdout.write(`configuration '${opts.config}' OK: ${config.listeners.length} listener(s), ${filters} wasm filter(s)${remoteNote}, ${config.bootstrap.staticClusters.length} static cluster(s)\n`);
      } else if (unique.length === 1) {
        process.stderr.write(`configuration '${opts.config}' is invalid: ${unique[0]}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`configuration '${opts.config}' is invalid: ${unique.length} errors\n${unique.map((e) => `  ${e}\n`).join('')}`);
        process.exitCode = 1;
      }
    });

  const plugins: PluginFlags[] = [];
  const lastPlugin = (flag: string): PluginFlags => {
    const p = plugins.at(-1);
    if (!p) throw new InvalidArgumentError(`${flag} describes the --plugin before it; give --plugin <file.wasm> first`);
    return p;
  };
  const collect = (v: string, acc: string[] = []): string[] => [...acc, v];
  program
    .command('run')
    .description('run the listeners of a bootstrap (-c), or of one made from the flags below, until SIGTERM/SIGINT')
    .option('-c, --config <file>', 'Envoy v3 bootstrap (YAML or JSON); without it the flags below make one')
    .option('--plugin <file.wasm>', 'a plugin to run (repeatable; the flags after it describe it)', (v: string) => {
      plugins.push({ file: v, env: {} });
      return v;
    })
    .option('--plugin-config <json|yaml|file>', "the last --plugin's configuration: JSON or YAML text, a .json/.yaml file or @file", (v: string) => {
      lastPlugin('--plugin-config').config = v;
      return v;
    })
    .option('--root-id <id>', "the last --plugin's root_id", (v: string) => {
      lastPlugin('--root-id').rootId = v;
      return v;
    })
    .option('--vm-id <id>', "the last --plugin's vm_id (default: its name)", (v: string) => {
      lastPlugin('--vm-id').vmId = v;
      return v;
    })
    .option('--name <name>', "the last --plugin's filter name (default: the file name)", (v: string) => {
      lastPlugin('--name').name = v;
      return v;
    })
    .option('--fail-open', 'the last --plugin fails open (requests pass when it has failed)', () => {
      lastPlugin('--fail-open').failOpen = true;
      return true;
    })
    .option('--plugin-env <KEY=VALUE>', "an environment variable the last --plugin sees (repeatable)", (v: string) => {
      const eq = v.indexOf('=');
      if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
      lastPlugin('--plugin-env').env[v.slice(0, eq)] = v.slice(eq + 1);
      return v;
    })
    .option('--wasm-plugin <file.yaml>', 'Higress or Istio WasmPlugin resources to run (repeatable)', collect)
    .option('--labels <k=v,...>', "this sidecar's labels, matched against a WasmPlugin's spec.selector")
    .option('--upstream <[name=]url>', 'where routed requests go: http://host:port (cluster "upstream" unless named)')
    .option('--cluster <name=host:port[,host:port]>', 'another cluster, e.g. outbound|6379||redis.default.svc.cluster.local=127.0.0.1:6379 (repeatable)', collect)
    .option('--listen <host:port>', 'the listener address', DEFAULT_LISTEN)
    .option('--admin <host:port>', 'the admin address (loopback unless you mean it)', DEFAULT_ADMIN)
    .option('--route-timeout <duration>', 'the route timeout, as Envoy writes durations', '15s')
    .option('--print-bootstrap', 'print the bootstrap the flags make (YAML) and exit')
    .addOption(new Option('--log-level <level>', 'log level').choices(LEVELS).default('info'))
    .addOption(new Option('--concurrency <n>', 'worker threads (Envoy --concurrency); 1 serves from the main thread').argParser(positiveInt).default(1))
    .option('--drain-timeout-ms <ms>', 'how long to wait for in-flight streams on shutdown', positiveInt, 10_000)
    .option('--shutdown-grace-ms <ms>', 'how long shutdown may take after the drain time before the process exits anyway (exit code 1)', nonNegativeInt, SHUTDOWN_GRACE_MS)
    .option('--wasm-memory-limit <bytes>', "each plugin VM's linear memory cap (memory.grow past it returns -1 in the guest)", positiveInt)
    .option('--wasm-call-deadline <ms>', 'how long one plugin callback may run before it is stopped and treated as a trap', positiveInt)
    .option('--wasm-start-deadline <ms>', 'the same for start-up, proxy_on_vm_start and proxy_on_configure', positiveInt)
    .action(async (opts: RunOptions) => {
      applyWasmTieringBudget(); // before any plugin is instantiated, in this thread or a worker
      let configFile: string;
      let cleanup = (): void => undefined;
      try {
        const made = madeBootstrap(opts, plugins);
        if (made === undefined) {
          if (opts.printBootstrap) throw new ConfigError('prints the bootstrap that the flags make; with -c the bootstrap is the file itself', '--print-bootstrap');
          configFile = opts.config!;
          refuseNonBootstrap(configFile);
        } else {
          if (opts.printBootstrap) {
            process.stdout.write(toYaml(made));
            return;
          }
          // Workers load the bootstrap from a file, so the one made from flags is written to a private temp dir.
          const dir = mkdtempSync(join(tmpdir(), 'proxy-wasm-sidecar-'));
          configFile = join(dir, 'bootstrap.json');
          writeFileSync(configFile, JSON.stringify(made, null, 2), { mode: 0o600 });
          cleanup = () => rmSync(dir, { recursive: true, force: true });
          process.once('exit', cleanup);
        }
      } catch (err) {
        process.stderr.write(`cannot start: ${describe(err)}\n`);
        process.exitCode = 1;
        return;
      }
      // Through the environment, so worker threads (which start with a copy of it) apply the same limits.
      for (const [key, value] of [['memoryLimitBytes', opts.wasmMemoryLimit], ['callDeadlineMs', opts.wasmCallDeadline], ['startDeadlineMs', opts.wasmStartDeadline]] as const) {
        if (value !== undefined) process.env[WASM_LIMIT_ENV[key]] = String(value);
      }
      try {
        wasmLimitDefaults();
      } catch (err) {
        process.stderr.write(`cannot start: ${describe(err)}\n`);
        cleanup();
        process.exitCode = 1;
        return;
      }
      let sidecar: Sidecar;
      const starting = Sidecar.start({ configFile, logLevel: opts.logLevel, drainTimeoutMs: opts.drainTimeoutMs, concurrency: opts.concurrency });
      exitOnSignals(starting.catch(() => undefined), opts.drainTimeoutMs, opts.shutdownGraceMs);
      try {
        sidecar = await starting;
      } catch (err) {
        // Name the file as validate does; a bootstrap made from flags has no file of the user's to name.
        const where = opts.config !== undefined && err instanceof ConfigError ? `${opts.config}: ` : '';
        process.stderr.write(`cannot start: ${where}${describe(err)}\n`);
        cleanup();
        process.exitCode = 1;
        return;
      }
      for (const l of sidecar.publicListeners) process.stdout.write(`listening ${l.config.name} ${l.config.address}:${l.port}\n`);
    });
  return program;
}

export async function runCli(argv: readonly string[]): Promise<void> {
  const program = buildCli();
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    process.exitCode = code === undefined ? 1 : code === 0 ? 0 : 1;
  }
}

if (require.main === module) void runCli(process.argv);
