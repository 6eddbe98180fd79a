#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { LevelWithSilent } from 'pino';
import { ConfigError, SidecarError } from './common/errors';
import { loadSidecarConfig, type SidecarConfig } from './http/listener-config';
import { Sidecar } from './main';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** Config checks beyond parsing: every Wasm module must be readable and compile. */
export function validateConfig(file: string): SidecarConfig {
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

function describe(err: unknown): string {
  if (err instanceof SidecarError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
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
      try {
        const config = validateConfig(opts.config);
        const filters = config.listeners.reduce((n, l) => n + l.wasmFilters.length, 0);
        process.stdout.write(`configuration '${opts.config}' OK: ${config.listeners.length} listener(s), ${filters} wasm filter(s), ${config.bootstrap.staticClusters.length} static cluster(s)\n`);
      } catch (err) {
        process.stderr.write(`configuration '${opts.config}' is invalid: ${describe(err)}\n`);
        process.exitCode = 1;
      }
    });

  program
    .command('run')
    .description('run the listeners of a bootstrap until SIGTERM/SIGINT (then drain and exit 0)')
    .requiredOption('-c, --config <file>', 'Envoy v3 bootstrap (YAML or JSON)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LEVELS).default('info'))
    .addOption(new Option('--concurrency <n>', 'worker threads (Envoy --concurrency); 1 serves from the main thread').argParser(positiveInt).default(1))
    .option('--drain-timeout-ms <ms>', 'how long to wait for in-flight streams on shutdown', positiveInt, 10_000)
    .action(async (opts: { config: string; logLevel: LevelWithSilent; concurrency: number; drainTimeoutMs: number }) => {
      let sidecar: Sidecar;
      try {
        sidecar = await Sidecar.start({ configFile: opts.config, logLevel: opts.logLevel, drainTimeoutMs: opts.drainTimeoutMs, concurrency: opts.concurrency });
      } catch (err) {
        process.stderr.write(`cannot start: ${describe(err)}\n`);
        process.exitCode = 1;
        return;
      }
      for (const l of sidecar.publicListeners) process.stdout.write(`listening ${l.config.name} ${l.config.address}:${l.port}\n`);
      const stop = (signal: string) => {
        sidecar.logger.info({ signal }, 'draining');
        sidecar.stop().then(
          () => { process.exitCode = 0; },
          (err: unknown) => { process.stderr.write(`shutdown failed: ${describe(err)}\n`); process.exitCode = 1; },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
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
