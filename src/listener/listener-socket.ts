import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A listener's bound socket, apart from the listener versions that serve it: an LDS update with the same
 * address keeps the port bound and only swaps `handler`, so no connection is refused across the update.
 * Without a handler (a listener still warming, or between versions) a connection is closed.
 */
export class ListenerSocket {
  private readonly server: Server;
  private boundPort = 0;
  private closing: Promise<void> | null = null;
  handler: ((socket: Socket) => void) | undefined;

  constructor(
    readonly address: string,
    readonly requestedPort: number,
  ) {
    this.server = createServer((socket) => {
      const h = this.handler;
      if (h) h(socket);
      else socket.destroy();
    });
  }

  /** The bound port (useful with port_value 0). */
  get port(): number {
    return this.boundPort;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** Binds and listens; rejects with the bind error (EADDRINUSE, EACCES, ...). */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.requestedPort, this.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
  }

  /** Stops accepting (connections already handed out are their listener's to close). Idempotent. */
  close(): Promise<void> {
    this.handler = undefined;
    this.closing ??= new Promise((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    return this.closing;
  }
}
