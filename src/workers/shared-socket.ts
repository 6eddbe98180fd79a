import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { ListenerConfig } from '../http/listener-config';
import { WorkerError } from './protocol';

/**
 * Connections reach the workers without the main thread touching them. The main thread binds each public
 * listener's socket (bound, never accepting) and every worker listens on a descriptor of its own for that same
 * socket, so the kernel hands each new connection straight to one worker's event loop (the accept(2) of whichever
 * worker is ready first), with the client's real addresses and no bytes copied. This is what cluster's SCHED_NONE
 * does for processes; it is done for threads here because Node 20 has no SO_REUSEPORT (Node 22.12 has) and cannot
 * post a handle to a worker_thread.
 *
 * A worker needs a descriptor of its own, not the main thread's fd number: closing a listening handle closes its
 * fd, so a worker that exits or crashes would close the socket under every other thread (and a later socket could
 * reuse the number). The duplicate is made the way child_process passes handles, SCM_RIGHTS over a unix-domain
 * IPC pipe: the worker connects to a per-start unix socket in the pool's private directory and is sent the
 * listening handle, which arrives in the worker's own loop as a new fd. This needs node's internal stream
 * bindings (process.binding: tcp_wrap, pipe_wrap, stream_wrap), which child_process and cluster are built on;
 * they are typed below to the few members used.
 */

interface TcpHandle {
  readonly fd: number;
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  getsockname(out: { address?: string; port?: number; family?: string }): number;
  close(callback?: () => void): void;
}

interface PipeHandle {
  readonly fd: number;
  open(fd: number): number;
  connect(req: object, path: string): number;
  readStart(): number;
  readStop(): number;
  writeUtf8String(req: object, text: string, handle?: TcpHandle): number;
  onread: ((buffer?: ArrayBuffer) => void) | null;
  pendingHandle: TcpHandle | null;
  close(callback?: () => void): void;
}

interface Bindings {
  readonly TCP: new (type: number) => TcpHandle;
  readonly tcpServer: number;
  readonly Pipe: new (type: number) => PipeHandle;
  readonly pipeIpc: number;
  readonly PipeConnectWrap: new () => { oncomplete?: (status: number) => void };
  readonly WriteWrap: new () => { handle?: PipeHandle; oncomplete?: (status: number) => void };
  /** Set by every write: whether it completed at once (0) or will call oncomplete. */
  readonly lastWriteWasAsync: () => boolean;
}

let cached: Bindings | undefined;
function bindings(): Bindings {
  if (cached) return cached;
  const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding.bind(process);
  const tcp = binding('tcp_wrap') as { TCP: Bindings['TCP']; constants: { SERVER: number } };
  const pipe = binding('pipe_wrap') as { Pipe: Bindings['Pipe']; PipeConnectWrap: Bindings['PipeConnectWrap']; constants: { IPC: number } };
  const stream = binding('stream_wrap') as { WriteWrap: Bindings['WriteWrap']; streamBaseState: Int32Array; kLastWriteWasAsync: number };
  cached = {
    TCP: tcp.TCP, tcpServer: tcp.constants.SERVER, Pipe: pipe.Pipe, pipeIpc: pipe.constants.IPC, PipeConnectWrap: pipe.PipeConnectWrap, WriteWrap: stream.WriteWrap,
    lastWriteWasAsync: () => stream.streamBaseState[stream.kLastWriteWasAsync] !== 0,
  };
  return cached;
}

/** UV_TCP_IPV6ONLY: an IPv6 listener on :: does not take IPv4 (Envoy's ipv4_compat defaults to false). */
const IPV6_ONLY = 1;

function bindError(where: string, code: string): WorkerError {
  return new WorkerError(`${where}: cannot bind: ${code}`);
}

/**
 * A public listener's socket in the main thread: bound at construction, put into the listening state by the
 * workers that listen on their duplicates (so it never accepts here). After close(), the socket stops listening
 * once the last worker closes its duplicate.
 */
export class SharedListenSocket {
  private readonly handle: TcpHandle;
  private boundPort: number;
  private isClosed = false;

  constructor(readonly config: ListenerConfig) {
    const b = bindings();
    this.handle = new b.TCP(b.tcpServer);
    const path = `listener ${config.name} ${config.address}:${config.port}`;
    const err = isIPv6(config.address) ? this.handle.bind6(config.address, config.port, IPV6_ONLY) : this.handle.bind(config.address, config.port);
    if (err !== 0) {
      this.handle.close();
      throw bindError(path, getSystemErrorName(err));
    }
    const out: { port?: number } = {};
    this.handle.getsockname(out);
    // libuv defers EADDRINUSE from bind(2) to listen(2), which the workers call: a socket that did not bind has
    // no port, so it is reported here, where the configuration is.
    if (!out.port) {
      this.handle.close();
      throw bindError(path, 'EADDRINUSE');
    }
    this.boundPort = out.port;
  }

  get port(): number {
    return this.boundPort;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** @internal The handle the pool sends to workers. */
  get tcpHandle(): TcpHandle {
    return this.handle;
  }

  /** Closes the main thread's descriptor; workers still listening keep the socket until they close theirs. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.handle.close();
  }
}

/**
 * Main thread: a unix socket at `path` that sends, to the k-th IPC connection it accepts, the k-th socket's
 * listening handle, then closes once every socket is sent. One per worker start; the path is in a 0700
 * directory, so no other user can take the handles.
 */
export class HandleOffer {
  private readonly server: Server;
  private sent = 0;
  private readonly done: Promise<void>;

  constructor(readonly path: string, private readonly sockets: readonly SharedListenSocket[]) {
    this.server = createServer({ pauseOnConnect: true }, (s) => this.send(s));
    this.done = new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.once('close', () => resolve());
    });
    this.done.catch(() => undefined);
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => {
        this.server.off('error', reject);
        if (this.sockets.length === 0) this.server.close();
        resolve();
      });
    });
  }

  /** Stops offering (the worker is gone, or has every handle). */
  close(): void {
    this.server.close();
  }

  private send(socket: Socket): void {
    const target = this.sockets[this.sent++];
    const fd = (socket as Socket & { _handle?: { fd?: number } })._handle?.fd;
    if (!target || fd === undefined || fd < 0 || target.closed) {
      socket.destroy();
      return;
    }
    const b = bindings();
    // An IPC-mode handle on the accepted connection's fd: only IPC pipes carry SCM_RIGHTS. Two handles now own
    // that fd; the IPC one is closed after the write and the accepted Socket is left unused and never destroyed,
    // so the fd is closed once (its number may be reused; the unused handle is closed only at process exit).
    const ipc = new b.Pipe(b.pipeIpc);
    if (ipc.open(fd) !== 0) {
      socket.destroy();
      return;
    }
    const req = new b.WriteWrap();
    req.handle = ipc;
    req.oncomplete = () => ipc.close();
    const err = ipc.writeUtf8String(req, 'L', target.tcpHandle);
    // On failure the accepted side closes the fd instead (the IPC handle is left unused), so the worker sees EOF
    // and fails its start. A write that completed at once (the usual case on a new unix socket) calls no oncomplete.
    if (err !== 0) socket.destroy();
    else if (!b.lastWriteWasAsync()) ipc.close();
    if (this.sent >= this.sockets.length) this.server.close();
  }
}

/** Worker: connects to a HandleOffer once per socket and returns each received listening handle, in order. */
export async function receiveListenHandles(path: string, count: number): Promise<object[]> {
  const handles: object[] = [];
  for (let i = 0; i < count; i++) handles.push(await receiveOne(path));
  return handles;
}

function receiveOne(path: string): Promise<object> {
  const b = bindings();
  const pipe = new b.Pipe(b.pipeIpc);
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      pipe.close();
      reject(new WorkerError(`receiving a listening socket from the main thread (${path}): ${why}`));
    };
    const req = new b.PipeConnectWrap();
    req.oncomplete = (status: number) => {
      if (status !== 0) return fail(`connect: ${getSystemErrorName(status)}`);
      pipe.onread = () => {
        const handle = pipe.pendingHandle;
        pipe.pendingHandle = null;
        pipe.readStop();
        if (!handle) return fail('no handle in the message');
        pipe.close();
        resolve(handle);
      };
      const err = pipe.readStart();
      if (err !== 0) fail(`read: ${getSystemErrorName(err)}`);
    };
    const err = pipe.connect(req, path);
    if (err !== 0) fail(`connect: ${getSystemErrorName(err)}`);
  });
}

/** Worker: a server accepting on a received listening handle, handing each connection to `onConnection`. */
export function listenOnHandle(handle: object, onConnection: (socket: Socket) => void): Promise<Server> {
  const server = createServer({ noDelay: true }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(handle, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
