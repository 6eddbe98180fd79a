import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { EDS_TYPE_URL } from '../../src/xds/protos';

/**
 * The test control plane on its own thread, for the xDS bench: in one thread its encoding and its handling of
 * the client's 10 000-name ACKs ran on the client's event loop and were counted as client latency. Requests are
 * `{ id, op, args }`; every reply is `{ id, result }` or `{ id, error }`.
 */

type Json = Record<string, unknown>;
let server: XdsTestServer | undefined;

async function handle(op: string, args: unknown[]): Promise<unknown> {
  switch (op) {
    case 'start':
      server = await XdsTestServer.start();
      return server.target;
    case 'setClusters':
      return server!.setClusters(args[0] as Json[]);
    case 'setEndpoints':
      return server!.setEndpoints(args[0] as Json[]);
    case 'upsert':
      return server!.upsert(args[0] as string, args[1] as Json[]);
    case 'push': {
      // How long the server's side of the push took on this thread (encode, frame, hand to HTTP/2), and when it
      // ended on the process-wide clock (timeOrigin differs per thread), so the bench can time what follows.
      const t0 = performance.now();
      server!.push(args[0] as string | undefined);
      const t1 = performance.now();
      return { ms: t1 - t0, endedAt: performance.timeOrigin + t1 };
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

parentPort?.on('message', (msg: { id: number; op: string; args: unknown[] }) => {
  handle(msg.op, msg.args).then(
    (result) => parentPort?.postMessage({ id: msg.id, result }),
    (err: unknown) => parentPort?.postMessage({ id: msg.id, error: String(err) }),
  );
});
