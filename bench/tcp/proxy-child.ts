/**
 * One TCP proxy of the TCP bench in a process of its own (so /proc/<pid>/stat is its CPU alone): the argument is a
 * JSON ProxyChildRequest. Prints `{"port": N}` once listening; exits when its stdin closes.
 *   net-pipe: a bare node:net pipe (socket.pipe both ways), the baseline
 *   sidecar:  the sidecar's TcpListener (tcp_proxy, and the Wasm network filters named)
 */
import { connect, createServer, type AddressInfo } from 'node:net';
import { silentLogger } from '../../src/common/logger';
import { buildTcpListener, type NetworkFilterSpec } from '../../test/tcp/helpers';

export interface ProxyChildRequest {
  readonly mode: 'net-pipe' | 'sidecar';
  readonly upstreamPort: number;
  readonly filters?: readonly NetworkFilterSpec[];
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2] ?? '{}') as ProxyChildRequest;
  let port: number;
  if (req.mode === 'net-pipe') {
    const server = createServer({ allowHalfOpen: true }, (down) => {
      const up = connect({ host: '127.0.0.1', port: req.upstreamPort, allowHalfOpen: true, noDelay: true });
      down.setNoDelay(true);
      down.pipe(up);
      up.pipe(down);
      down.on('error', () => up.destroy());
      up.on('error', () => down.destroy());
      down.on('close', () => up.destroy());
      up.on('close', () => down.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  } else {
    const built = await buildTcpListener({ upstreamPort: req.upstreamPort, filters: req.filters ?? [] }, silentLogger());
    await built.listener.start();
    port = built.listener.port;
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
