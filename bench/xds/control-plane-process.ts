import { performance } from 'node:perf_hooks';
import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { EDS_TYPE_URL } from '../../src/xds/protos';

/**
 * The test control plane in a process of its own, for the xDS bench (forked with an IPC channel): in the bench's
 * process its encoding and its handling of the client's 10 000-name ACKs ran on the client's event loop, and its
 * memory was counted in the sidecar's RSS. Requests are `{ id, op, args }`; every reply is `{ id, result }` or
 * `{ id, error }`. Times cross the process boundary as epoch ms, `performance.timeOrigin + performance.now()`
 * (the same clocks on the same machine).
 */

type Json = Record<string, unknown>;
let server: XdsTestServer | undefined;

const epochMs = (): number => performance.timeOrigin + performance.now();

async function handle(op: string, args: unknown[]): Promise<unknown> {
  switch (op) {
    case 'start':
      server = await XdsTestServer.start();
      return server.target;
    case 'clock':
      return epochMs();
    case 'setClusters':
      return server!.setClusters(args[0] as Json[]);
    case 'setEndpoints':
      return server!.setEndpoints(args[0] as Json[]);
    case 'upsert':
      return server!.upsert(args[0] as string, args[1] as Json[]);
    case 'push': {
      // When the push started and when it was handed to HTTP/2, so the bench can time the push end to end and
      // the sidecar's share after the hand-off, without the IPC message that asked for it.
      const startedAt = epochMs();
      server!.push(args[0] as string | undefined);
      return { startedAt, endedAt: epochMs() };
    }
    case 'waitEdsAck':
      await server!.waitFor(() => server!.requestsFor(EDS_TYPE_URL).some((r) => r.responseNonce !== ''), Number(args[0]), 'EDS ACK');
      return undefined;
    case 'waitLastReply':
      await server!.waitFor(() => server!.replyTo(server!.lastNonce) !== undefined, Number(args[0]), 'reply to the last push');
      return undefined;
    case 'close':
      await server?.close();
      server = undefined;
      return undefined;
    default:
      throw new Error(`unknown op ${op}`);
  }
}

process.on('message', (msg: { id: number; op: string; args: unknown[] }) => {
  handle(msg.op, msg.args).then(
    (result) => process.send?.({ id: msg.id, result }),
    (err: unknown) => process.send?.({ id: msg.id, error: String(err) }),
  );
});
// The bench closing the IPC channel (or dying) ends this process.
process.on('disconnect', () => process.exit(0));
