import { createConnection, createServer, isIPv4, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../common/logger';
import type { ListenerConfig } from '../http/listener-config';

/**
 * L4 forwarding from the main thread's public listener to a worker. Node 20 cannot share a listening socket
 * between worker_threads, so the main thread accepts and pipes each connection to one worker's unix socket
 * (keep-alive connections stay on that worker). The first bytes on the worker's socket are a PROXY protocol v1
 * line (haproxy proxy-protocol.txt §2.1) carrying the client's and the public listener's addresses; the worker
 * strips it and presents those addresses as the socket's remote/local address, so `source.address` and
 * `destination.address` are what they would be without the hop. Nothing else is added to the byte stream.
 */

/** The v1 header is at most 107 bytes plus CRLF. */
const MAX_V1_LINE = 108;

export interface ConnectionAddresses {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
  readonly localAddress: string;
  readonly localPort: number;
}

export function proxyV1Line(a: ConnectionAddresses): string {
  const proto = a.remoteFamily === 'IPv4' && isIPv4(a.localAddress) ? 'TCP4' : 'TCP6';
  return `PROXY ${proto} ${a.remoteAddress} ${a.localAddress} ${a.remotePort} ${a.localPort}\r\n`;
}

/** Parses one v1 line (without CRLF); undefined if it is not one. `PROXY UNKNOWN` gives null (keep the socket's own). */
export function parseProxyV1(line: string): ConnectionAddresses | null | undefined {
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') return undefined;
  if (parts[1] === 'UNKNOWN') return null;
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) return undefined;
  const remotePort = Number(parts[4]);
  const localPort = Number(parts[5]);
  if (!Number.isInteger(remotePort) || !Number.isInteger(localPort)) return undefined;
  return { remoteAddress: parts[2]!, localAddress: parts[3]!, remotePort, localPort, remoteFamily: parts[1] === 'TCP4' ? 'IPv4' : 'IPv6' };
}

/** Overrides what node's Socket getters report; the HTTP layer reads these for source/destination properties. */
function presentAs(socket: Socket, a: ConnectionAddresses): void {
  for (const [k, v] of Object.entries(a)) Object.defineProperty(socket, k, { value: v, configurable: true, enumerable: true });
}

/**
 * The worker side: a unix-socket server whose connections start with a PROXY v1 line. Each connection is handed
 * to `onConnection` with the line removed (the rest is unshifted back) and the client's addresses applied.
 */
export class ForwardedConnectionServer {
  private readonly server: Server;
  private readonly pending = new Set<Socket>();

  constructor(private readonly path: string, onConnection: (socket: Socket) => void, private readonly logger: Logger) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket, onConnection));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.path;
  }

  /** Stops accepting; connections already handed over belong to their HTTP listener. */
  close(): Promise<void> {
    for (const s of this.pending) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket, onConnection: (socket: Socket) => void): void {
    this.pending.add(socket);
    let head: Buffer = Buffer.alloc(0);
    const fail = (why: string): void => {
      this.pending.delete(socket);
      this.logger.warn({ why }, 'dropping a forwarded connection without a valid PROXY header');
      socket.destroy();
    };
    const onReadable = (): void => {
      for (;;) {
        const chunk = socket.read() as Buffer | null;
        if (chunk === null) return;
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const eol = head.indexOf('\r\n');
        if (eol === -1) {
          if (head.length > MAX_V1_LINE) return fail('header too long');
          continue;
        }
        socket.off('readable', onReadable);
        socket.off('end', onEnd);
        this.pending.delete(socket);
        const parsed = parseProxyV1(head.subarray(0, eol).toString('latin1'));
        if (parsed === undefined) return fail('not a PROXY v1 line');
        if (parsed) presentAs(socket, parsed);
        const rest = head.subarray(eol + 2);
        if (rest.length > 0) socket.unshift(rest);
        onConnection(socket);
        return;
      }
    };
    const onEnd = (): void => fail('closed before the header');
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.on('error', () => socket.destroy());
    socket.resume(); // pauseOnConnect: start reading; 'readable' takes over flow control
  }
}

/** A worker the main thread may forward to. */
export interface ForwardTarget {
  readonly index: number;
  /** Unix socket path per listener index. */
  readonly sockets: readonly string[];
  /** Connections currently forwarded to it. */
  active: number;
}

/**
 * The main-thread side of one bootstrap listener: accepts on the public address and pipes each connection to
 * the worker with the fewest forwarded connections (ties: round-robin).
 */
export class ForwardingListener {
  private readonly server: Server;
  private readonly connections = new Set<Socket>();
  private boundPort = 0;
  private cursor = 0;
  private closing: Promise<void> | null = null;

  constructor(
    readonly config: ListenerConfig,
    private readonly listenerIndex: number,
    private readonly targets: () => readonly ForwardTarget[],
    private readonly logger: Logger,
  ) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => this.forward(s));
  }

  get port(): number {
    return this.boundPort;
  }

  /** Client connections currently piped to a worker. */
  get activeConnections(): number {
    return this.connections.size;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, this.config.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
  }

  /** Stops accepting; forwarded connections stay until their worker closes them (it drains them). */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => this.server.close(() => resolve()));
    return this.closing;
  }

  /** Destroys every forwarded connection still open. */
  destroyConnections(): void {
    for (const s of this.connections) s.destroy();
  }

  private choose(): ForwardTarget | undefined {
    const all = this.targets();
    if (all.length === 0) return undefined;
    let best: ForwardTarget | undefined;
    for (let i = 0; i < all.length; i++) {
      const t = all[(this.cursor + i) % all.length]!;
      if (!best || t.active < best.active) best = t;
    }
    this.cursor = (this.cursor + 1) % all.length;
    return best;
  }

  private forward(client: Socket): void {
    const target = this.choose();
    const path = target?.sockets[this.listenerIndex];
    if (!target || path === undefined || client.remoteAddress === undefined) {
      client.destroy();
      return;
    }
    const addresses: ConnectionAddresses = {
      remoteAddress: client.remoteAddress,
      remotePort: client.remotePort ?? 0,
      remoteFamily: client.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4',
      localAddress: client.localAddress ?? this.config.address,
      localPort: client.localPort ?? this.boundPort,
    };
    target.active++;
    this.connections.add(client);
    const upstream = createConnection({ path, allowHalfOpen: true });
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      target.active--;
      this.connections.delete(client);
      client.destroy();
      upstream.destroy();
    };
    upstream.write(proxyV1Line(addresses));
    client.pipe(upstream);
    // The worker closing its side (response done with connection: close, or drained at shutdown): flush what is
    // written to the client, then close it. pipe() already ends the client on the worker's FIN.
    upstream.pipe(client);
    upstream.on('close', () => {
      if (client.destroyed) return;
      if (client.writableFinished) finish();
      else {
        client.end();
        client.once('finish', finish);
      }
    });
    client.on('error', finish);
    upstream.on('error', (err) => {
      this.logger.debug({ worker: target.index, err: err.message }, 'forwarded connection failed');
    });
    client.on('close', finish);
    client.resume();
  }
}
