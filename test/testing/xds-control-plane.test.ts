import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Type } from 'protobufjs';
import { ADS_DELTA_METHOD, ADS_SOTW_METHOD, EDS_TYPE_URL, loadEnvoyProtos } from '../../src/xds/protos';
import { XdsTestServer } from '../support/xds-server';
import { cla } from '../support/xds-fixtures';

/**
 * The test control plane patches a stream's last SotW body when resources were replaced in place, rather than
 * rebuilding it. Every response must still be exactly the current state: read here off the wire by a plain gRPC
 * stream (not the sidecar's client, which skips unchanged CLAs and would hide a stale one).
 */

interface Decoded {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: { type_url: string; value: Uint8Array }[];
}

interface DecodedDelta {
  nonce: string;
  resources: { name: string; version: string }[];
  removed_resources: string[];
}

const protos = loadEnvoyProtos();

/** One raw ADS stream (SotW or Delta): sends encoded requests, queues the decoded responses. */
class RawAdsStream<Response> {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Buffer, Buffer>;
  private readonly queue: Response[] = [];
  private waiter: (() => void) | undefined;

  constructor(
    target: string,
    method: string,
    private readonly requestType: Type,
    responseType: Type,
  ) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    const id = (b: Buffer): Buffer => b;
    this.call = this.client.makeBidiStreamRequest<Buffer, Buffer>(method, id, id);
    this.call.on('data', (b: Buffer) => {
      this.queue.push(responseType.toObject(responseType.decode(b), { defaults: true }) as Response);
      this.waiter?.();
    });
    this.call.on('error', () => undefined);
  }

  send(request: Record<string, unknown>): void {
    this.call.write(Buffer.from(this.requestType.encode({ node: { id: 'raw' }, type_url: EDS_TYPE_URL, ...request }).finish()));
  }

  async next(): Promise<Response> {
    const deadline = Date.now() + 5000;
    while (this.queue.length === 0) {
      if (Date.now() > deadline) throw new Error('no response');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50).unref();
      });
    }
    return this.queue.shift()!;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

class RawSotwStream extends RawAdsStream<Decoded> {
  constructor(target: string) {
    super(target, ADS_SOTW_METHOD, protos.DiscoveryRequest, protos.DiscoveryResponse);
  }

  request(names: readonly string[], ack?: Decoded): void {
    this.send({ resource_names: [...names], version_info: ack?.version_info ?? '', response_nonce: ack?.nonce ?? '' });
  }
}

describe('XdsTestServer: SotW responses patched in place are the current state', () => {
  let server: XdsTestServer;
  let named: RawSotwStream;
  let wildcard: RawSotwStream;
  const N = 30;
  const names = Array.from({ length: N }, (_, i) => `c${i}`);
  const gen = new Array<number>(N).fill(0);
  // Different generations have different numbers of hosts, so replacements change the body's length.
  const claOf = (i: number): Record<string, unknown> => cla(names[i]!, Array.from({ length: 1 + ((i + gen[i]!) % 4) }, (_, k) => [`10.7.${i}.${k + 1 + gen[i]! * 10}`, 7000 + gen[i]!]));
  let present = names.map((_, i) => i);
  let subscribed = names.filter((_, i) => i % 2 === 0);
  const nonces = new Set<string>();

  /** Reads each stream's next response, checks it against the current state, and ACKs it. */
  async function expectCurrent(): Promise<void> {
    for (const [stream, wanted] of [[named, subscribed], [wildcard, undefined]] as const) {
      const r = await stream.next();
      assert.equal(r.type_url, EDS_TYPE_URL);
      assert.equal(r.version_info, server.version(EDS_TYPE_URL));
      assert.ok(r.nonce !== '' && !nonces.has(r.nonce), `a fresh nonce, not ${r.nonce}`);
      nonces.add(r.nonce);
      const expected = present.filter((i) => wanted === undefined || wanted.includes(names[i]!)).map((i) => Buffer.from(server.encodeAny(EDS_TYPE_URL, claOf(i)).value).toString('hex'));
      assert.deepEqual(r.resources.map((a) => Buffer.from(a.value).toString('hex')), expected);
      stream.request(wanted ?? [], r);
    }
  }

  const upsert = (changed: readonly number[]): void => {
    for (const i of changed) gen[i]! += 1;
    server.upsert(EDS_TYPE_URL, changed.map(claOf));
  };

  before(async () => {
    server = await XdsTestServer.start();
    server.setEndpoints(names.map((_, i) => claOf(i)));
    named = new RawSotwStream(server.target);
    wildcard = new RawSotwStream(server.target);
    named.request(subscribed);
    wildcard.request([]);
    await expectCurrent();
  });

  after(async () => {
    named.close();
    wildcard.close();
    await server.close();
  });

  it('after scattered replacements of different sizes, push after push', async () => {
    for (const changed of [[0], [29], [4, 5, 20], [1, 17, 28], [10], [0, 29], [22, 23, 24, 25]]) {
      upsert(changed);
      server.push(EDS_TYPE_URL);
      await expectCurrent();
    }
  });

  it('after several versions between two pushes, and after more replacements than are patched', async () => {
    upsert([3]);
    upsert([3, 8]);
    upsert([14]);
    server.push(EDS_TYPE_URL);
    await expectCurrent();
    upsert(names.map((_, i) => i).filter((i) => i % 3 !== 0));
    server.push(EDS_TYPE_URL);
    await expectCurrent();
  });

  it('after a push with nothing changed, a removal, an addition and a new subscription', async () => {
    server.push(EDS_TYPE_URL);
    await expectCurrent();
    server.remove(EDS_TYPE_URL, [names[6]!]);
    present = present.filter((i) => i !== 6);
    server.push(EDS_TYPE_URL);
    await expectCurrent();
    gen[6]! += 1;
    server.upsert(EDS_TYPE_URL, [claOf(6)]);
    present = [...present, 6];
    server.push(EDS_TYPE_URL);
    await expectCurrent();
    // A newly requested name is answered at once; the next push patches the body built for the new names.
    subscribed = [...subscribed, names[7]!];
    named.request(subscribed);
    const r = await named.next();
    assert.deepEqual(
      r.resources.map((a) => Buffer.from(a.value).toString('hex')),
      present.filter((i) => subscribed.includes(names[i]!)).map((i) => Buffer.from(server.encodeAny(EDS_TYPE_URL, claOf(i)).value).toString('hex')),
    );
    named.request(subscribed, r);
    upsert([7, 9]);
    server.push(EDS_TYPE_URL);
    await expectCurrent();
  });
});

describe('XdsTestServer: a Delta push after a full diff sends just what was replaced', () => {
  let server: XdsTestServer;
  let stream: RawAdsStream<DecodedDelta>;
  const names = ['d0', 'd1', 'd2', 'd3'];

  /** The next response as `name@version` entries and removed names, ACKed. */
  async function next(): Promise<{ resources: string[]; removed: string[] }> {
    const r = await stream.next();
    stream.send({ response_nonce: r.nonce });
    return { resources: r.resources.map((x) => `${x.name}@${x.version}`), removed: r.removed_resources };
  }

  before(async () => {
    server = await XdsTestServer.start();
    server.setEndpoints(names.map((n) => cla(n, [['10.6.0.1', 1]])));
    stream = new RawAdsStream(server.target, ADS_DELTA_METHOD, protos.DeltaDiscoveryRequest, protos.DeltaDiscoveryResponse);
    stream.send({ resource_names_subscribe: ['d0', 'd1', 'd2'] });
  });

  after(async () => {
    stream.close();
    await server.close();
  });

  it('replacements, a subscription added in an ACK, a removal', async () => {
    assert.deepEqual(await next(), { resources: ['d0@1', 'd1@1', 'd2@1'], removed: [] });
    server.upsert(EDS_TYPE_URL, [cla('d1', [['10.6.0.2', 1]])]);
    server.upsert(EDS_TYPE_URL, [cla('d3', [['10.6.0.2', 1]])]); // not subscribed
    server.push(EDS_TYPE_URL);
    assert.deepEqual(await next(), { resources: ['d1@2'], removed: [] });
    // Subscribing in an ACK gets no reply; the next push must still bring d3 (a full diff, not just the replaced).
    stream.send({ response_nonce: server.lastNonceFor(EDS_TYPE_URL), resource_names_subscribe: ['d3'] });
    await server.waitFor(() => server.requestsFor(EDS_TYPE_URL).some((r) => r.subscribe.includes('d3')), 5000, 'the subscription');
    server.upsert(EDS_TYPE_URL, [cla('d0', [['10.6.0.3', 1]])]);
    server.push(EDS_TYPE_URL);
    assert.deepEqual(await next(), { resources: ['d0@4', 'd3@3'], removed: [] });
    server.remove(EDS_TYPE_URL, ['d2']);
    server.push(EDS_TYPE_URL);
    assert.deepEqual(await next(), { resources: [], removed: ['d2'] });
  });
});
