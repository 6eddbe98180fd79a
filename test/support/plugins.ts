import { join } from 'node:path';
import { existsSync } from 'node:fs';

/** Repo root, whether running from test/ (ts) or dist/test/ (compiled). */
export const REPO_ROOT = [join(__dirname, '..', '..'), join(__dirname, '..', '..', '..')].find((d) => existsSync(join(d, 'package.json')))!;

/** A plugin built from source by `make plugins` (scripts/build-plugins.mjs). */
export function pluginPath(name: string): string {
  const p = join(REPO_ROOT, 'build', 'plugins', `${name}.wasm`);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`make plugins\` first`);
  return p;
}
