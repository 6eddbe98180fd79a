import { randomFillSync } from 'node:crypto';
import { WasiErrno } from '../abi/enums';
import { MAX_RANDOM_GET_BYTES } from '../common/limits';
import type { GuestMemory } from './guest-memory';

/**
 * WASI preview1 for plugins, registered under both `wasi_snapshot_preview1` and `wasi_unstable` as cpp-host
 * does. Deliberately not `node:wasi`: Node documents it as lacking the file-system security guarantees of other
 * runtimes, it writes straight to process stdio (we route plugin output to the log under the plugin's name),
 * and it cannot be restricted to the environment variables the VmConfig lists. Plugins see no files: no
 * preopens (fd_prestat_get answers BADF, which ends Go's preopen scan), path_* fail.
 */

/** Thrown by proc_exit to unwind the guest; the VM that raised it is finished (not the process). */
export class ProcExit extends Error {
  override name = 'ProcExit';
  constructor(readonly exitCode: number) {
    super(`plugin called proc_exit(${exitCode})`);
  }
}

export interface WasiHost {
  memory(): GuestMemory | undefined;
  /** `KEY=VALUE` entries, only what the VM config lists. */
  readonly environment: readonly string[];
  stdout(text: string): void;
  stderr(text: string): void;
}

type WasmType = 'i32' | 'i64';
type WasiHandler = (host: WasiHost, ...args: Array<number | bigint>) => number;

export interface WasiFunction {
  readonly name: string;
  readonly params: readonly WasmType[];
  /** proc_exit has no result. */
  readonly result: 'i32' | 'none';
  readonly handler: WasiHandler;
}

const I = 'i32' as const;
const L = 'i64' as const;

function fn(name: string, params: readonly WasmType[], handler: WasiHandler, result: 'i32' | 'none' = 'i32'): WasiFunction {
  return { name, params, result, handler };
}

const nosys: WasiHandler = () => WasiErrno.Nosys;
const badf: WasiHandler = () => WasiErrno.Badf;
const ok: WasiHandler = () => WasiErrno.Success;
const notsup: WasiHandler = () => WasiErrno.Notsup;

function writeSizes(host: WasiHost, countPtr: number, sizePtr: number, count: number, size: number): number {
  const mem = host.memory();
  if (!mem || !mem.setU32(countPtr, count) || !mem.setU32(sizePtr, size)) return WasiErrno.Fault;
  return WasiErrno.Success;
}

const decoder = new TextDecoder();

/** One trailing newline is trimmed, as cpp-host does, so a println becomes one log line. */
/**
 * Bytes one fd_write takes: beyond it the write is short (nwritten says how much), as POSIX allows and WASI
 * libcs and Go's runtime retry. Without it, iovecs pointing at the same large region many times would have the
 * host copy and log (iovecs x memory size) bytes from one call.
 */
export const MAX_FD_WRITE_BYTES = 1024 * 1024;

function fdWrite(host: WasiHost, fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
  const mem = host.memory();
  if (!mem) return WasiErrno.Fault;
  if (fd !== 1 && fd !== 2) return WasiErrno.Badf;
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < iovsLen && total < MAX_FD_WRITE_BYTES; i++) {
    const ptr = mem.getU32(iovs + i * 8);
    const len = mem.getU32(iovs + i * 8 + 4);
    if (ptr === undefined || len === undefined) return WasiErrno.Fault;
    if (mem.view(ptr, len) === undefined) return WasiErrno.Fault;
    const take = Math.min(len, MAX_FD_WRITE_BYTES - total);
    parts.push(mem.copy(ptr, take)!);
    total += take;
  }
  if (!mem.setU32(nwrittenPtr, total)) return WasiErrno.Fault;
  let text = decoder.decode(Buffer.concat(parts));
  if (text.endsWith('\n')) text = text.slice(0, -1);
  if (fd === 1) host.stdout(text);
  else host.stderr(text);
  return WasiErrno.Success;
}

/** FDSTAT for stdout/stderr: filetype CHARACTER_DEVICE (2), rights FD_WRITE (1 << 6). */
function fdFdstatGet(host: WasiHost, fd: number, statPtr: number): number {
  if (fd !== 1 && fd !== 2) return WasiErrno.Badf;
  const mem = host.memory();
  const stat = new Uint8Array(24);
  stat[0] = 2;
  new DataView(stat.buffer).setBigUint64(8, 1n << 6n, true);
  if (!mem || !mem.write(statPtr, stat)) return WasiErrno.Fault;
  return WasiErrno.Success;
}

function clockTimeGet(host: WasiHost, clockId: number, _precision: number | bigint, timePtr: number): number {
  let ns: bigint;
  if (clockId === 0) ns = BigInt(Date.now()) * 1_000_000n;
  else if (clockId === 1) ns = process.hrtime.bigint();
  else return WasiErrno.Notsup;
  const mem = host.memory();
  if (!mem || !mem.setU64(timePtr, ns)) return WasiErrno.Fault;
  return WasiErrno.Success;
}

function clockResGet(host: WasiHost, clockId: number, resPtr: number): number {
  if (clockId !== 0 && clockId !== 1) return WasiErrno.Notsup;
  const mem = host.memory();
  if (!mem || !mem.setU64(resPtr, 1n)) return WasiErrno.Fault;
  return WasiErrno.Success;
}

function randomGet(host: WasiHost, ptr: number, len: number): number {
  if ((len >>> 0) > MAX_RANDOM_GET_BYTES) return WasiErrno.Inval;
  const mem = host.memory();
  const view = mem?.view(ptr, len);
  if (!view) return WasiErrno.Fault;
  randomFillSync(view);
  return WasiErrno.Success;
}

function environSizesGet(host: WasiHost, countPtr: number, sizePtr: number): number {
  const size = host.environment.reduce((n, e) => n + Buffer.byteLength(e) + 1, 0);
  return writeSizes(host, countPtr, sizePtr, host.environment.length, size);
}

function environGet(host: WasiHost, environPtr: number, bufPtr: number): number {
  const mem = host.memory();
  if (!mem) return WasiErrno.Fault;
  let off = bufPtr;
  for (let i = 0; i < host.environment.length; i++) {
    const bytes = Buffer.from(`${host.environment[i]}\0`, 'utf8');
    if (!mem.setU32(environPtr + i * 4, off) || !mem.write(off, bytes)) return WasiErrno.Fault;
    off += bytes.length;
  }
  return WasiErrno.Success;
}

/** Nothing ever becomes ready: report zero events (cpp-host). */
function pollOneoff(host: WasiHost, _in: number, _out: number, _n: number, neventsPtr: number): number {
  const mem = host.memory();
  if (!mem || !mem.setU32(neventsPtr, 0)) return WasiErrno.Fault;
  return WasiErrno.Success;
}

export const WASI_FUNCTIONS: readonly WasiFunction[] = [
  fn('args_get', [I, I], ok),
  fn('args_sizes_get', [I, I], (h, c, s) => writeSizes(h, c as number, s as number, 0, 0)),
  fn('environ_get', [I, I], (h, e, b) => environGet(h, e as number, b as number)),
  fn('environ_sizes_get', [I, I], (h, c, s) => environSizesGet(h, c as number, s as number)),
  fn('clock_res_get', [I, I], (h, id, p) => clockResGet(h, id as number, p as number)),
  fn('clock_time_get', [I, L, I], (h, id, prec, p) => clockTimeGet(h, id as number, prec as bigint, p as number)),
  fn('fd_advise', [I, L, L, I], badf),
  fn('fd_allocate', [I, L, L], badf),
  fn('fd_close', [I], ok),
  fn('fd_datasync', [I], badf),
  fn('fd_fdstat_get', [I, I], (h, fd, p) => fdFdstatGet(h, fd as number, p as number)),
  fn('fd_fdstat_set_flags', [I, I], nosys),
  fn('fd_fdstat_set_rights', [I, L, L], nosys),
  fn('fd_filestat_get', [I, I], badf),
  fn('fd_filestat_set_size', [I, L], badf),
  fn('fd_filestat_set_times', [I, L, L, I], badf),
  fn('fd_pread', [I, I, I, L, I], badf),
  fn('fd_prestat_get', [I, I], badf),
  fn('fd_prestat_dir_name', [I, I, I], nosys),
  fn('fd_pwrite', [I, I, I, L, I], badf),
  fn('fd_read', [I, I, I, I], nosys),
  fn('fd_readdir', [I, I, I, L, I], badf),
  fn('fd_renumber', [I, I], badf),
  fn('fd_seek', [I, L, I, I], ok),
  fn('fd_sync', [I], badf),
  fn('fd_tell', [I, I], badf),
  fn('fd_write', [I, I, I, I], (h, fd, iovs, n, w) => fdWrite(h, fd as number, iovs as number, n as number, w as number)),
  fn('path_create_directory', [I, I, I], nosys),
  fn('path_filestat_get', [I, I, I, I, I], notsup),
  fn('path_filestat_set_times', [I, I, I, I, L, L, I], nosys),
  fn('path_link', [I, I, I, I, I, I, I], nosys),
  fn('path_open', [I, I, I, I, I, L, L, I, I], () => WasiErrno.Noent),
  fn('path_readlink', [I, I, I, I, I, I], nosys),
  fn('path_remove_directory', [I, I, I], nosys),
  fn('path_rename', [I, I, I, I, I, I], nosys),
  fn('path_symlink', [I, I, I, I, I], nosys),
  fn('path_unlink_file', [I, I, I], nosys),
  fn('poll_oneoff', [I, I, I, I], (h, i, o, n, p) => pollOneoff(h, i as number, o as number, n as number, p as number)),
  fn('proc_exit', [I], (_h, code) => {
    throw new ProcExit(code as number);
  }, 'none'),
  fn('proc_raise', [I], nosys),
  fn('sched_yield', [], ok),
  fn('random_get', [I, I], (h, p, n) => randomGet(h, p as number, n as number)),
  fn('sock_accept', [I, I, I], notsup),
  fn('sock_recv', [I, I, I, I, I, I], notsup),
  fn('sock_send', [I, I, I, I, I], notsup),
  fn('sock_shutdown', [I, I], notsup),
];

export const WASI_MODULE_NAMES = ['wasi_snapshot_preview1', 'wasi_unstable'] as const;

/** The import namespace for one VM. Every host exception other than ProcExit becomes FAULT, never a trap. */
export function buildWasiImports(host: WasiHost): Record<string, WebAssembly.ImportValue> {
  const ns: Record<string, WebAssembly.ImportValue> = {};
  for (const f of WASI_FUNCTIONS) {
    ns[f.name] = (...args: Array<number | bigint>) => {
      try {
        return f.handler(host, ...args);
      } catch (err) {
        if (err instanceof ProcExit) throw err;
        return WasiErrno.Fault;
      }
    };
  }
  return ns;
}
