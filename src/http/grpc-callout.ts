import { createPrivateKey } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { UpstreamTls } from '../tls/tls-context';
import type { Disposable } from '../common/disposable';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { GrpcCall, GrpcCalloutHandlers, GrpcCalloutOutcome, GrpcCalloutRequest, GrpcCalloutService, GrpcStreamCall } from '../services/grpc-callout';
import type { ClusterManager, LiveCluster } from '../upstream/cluster-manager';

let grpcModule: typeof grpc | undefined;

/** @grpc/grpc-js (65 modules), loaded at a plugin's first gRPC call: most sidecars never make one. */
function grpcJs(): typeof grpc {
  grpcModule ??= require('@grpc/grpc-js') as typeof grpc;
  return grpcModule;
}

/**
 * proxy_grpc_call / proxy_grpc_stream over @grpc/grpc-js: the plugin's message bytes go out as they are and
 * replies come back as raw bytes (identity (de)serializers), one channel per (cluster, host), host chosen by the
 * cluster's load balancer. The cluster name is exact (Envoy looks it up as given). Channels of hosts that leave
 * their cluster are closed.
 */
export class GrpcJsCalloutService implements GrpcCalloutService {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly subscription: Disposable;
  private readonly logger: Logger;

  constructor(
    private readonly clusters: ClusterManager,
    logger: Logger = silentLogger(),
  ) {
    this.logger = logger.child({ component: 'grpc_callout' });
    this.subscription = clusters.onEvent((e) => {
      if (e.type === 'membership') for (const h of e.removed) this.drop(`${e.cluster.name}\0${h.key}`);
      else this.dropCluster(e.type === 'removed' ? e.name : e.cluster.name);
    });
  }

  unary(request: GrpcCalloutRequest, message: Buffer, handlers: GrpcCalloutHandlers): GrpcCalloutOutcome<{ readonly call: GrpcCall }> {
    const client = this.pick(request.cluster);
    if (typeof client === 'string') return client === 'unknown' ? { status: 'unknown_cluster' } : { status: 'internal_failure', reason: client };
    let cancelled = false;
    const call = client.makeUnaryRequest<Buffer, Buffer>(
      `/${request.service}/${request.method}`, identity, identity, message, toMetadata(request.metadata), callOptions(request),
      (err, reply) => {
        if (!cancelled && !err && reply) handlers.onMessage(reply);
      },
    );
    call.on('metadata', (md: grpc.Metadata) => !cancelled && handlers.onInitialMetadata(fromMetadata(md)));
    call.on('status', (st: grpc.StatusObject) => !cancelled && handlers.onClose(st.code, st.details, fromMetadata(st.metadata)));
    return { status: 'ok', call: { cancel: () => { cancelled = true; call.cancel(); } } };
  }

  stream(request: GrpcCalloutRequest, handlers: GrpcCalloutHandlers): GrpcCalloutOutcome<{ readonly call: GrpcStreamCall }> {
    const client = this.pick(request.cluster);
    if (typeof client === 'string') return client === 'unknown' ? { status: 'unknown_cluster' } : { status: 'internal_failure', reason: client };
    let cancelled = false;
    const call = client.makeBidiStreamRequest<Buffer, Buffer>(`/${request.service}/${request.method}`, identity, identity, toMetadata(request.metadata), callOptions(request));
    call.on('metadata', (md: grpc.Metadata) => !cancelled && handlers.onInitialMetadata(fromMetadata(md)));
    call.on('data', (msg: Buffer) => !cancelled && handlers.onMessage(msg));
    call.on('status', (st: grpc.StatusObject) => !cancelled && handlers.onClose(st.code, st.details, fromMetadata(st.metadata)));
    call.on('error', () => {}); // reported through 'status'
    return {
      status: 'ok',
      call: {
        send: (msg, endOfStream) => {
          call.write(msg);
          if (endOfStream) call.end();
        },
        close: () => call.end(),
        cancel: () => {
          cancelled = true;
          call.cancel();
        },
      },
    };
  }

  close(): void {
    this.subscription.dispose();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private pick(name: string): grpc.Client | 'unknown' | string {
    const cluster = this.clusters.get(name);
    if (!cluster || cluster.name !== name) return 'unknown';
    const host = cluster.chooseHost();
    if (!host) return `no healthy host in cluster ${name}`;
    return this.client(cluster, host.key);
  }

  private client(cluster: LiveCluster, hostKey: string): grpc.Client {
    const key = `${cluster.name}\0${hostKey}`;
    let c = this.clients.get(key);
    if (!c) {
      const tls = cluster.config.tls;
      c = new (grpcJs().Client)(hostKey, tls ? tlsCredentials(tls) : grpcJs().credentials.createInsecure(), {
        'grpc.max_receive_message_length': -1,
        // UpstreamTlsContext.sni: the TLS server name (and the :authority the server sees).
        ...(tls?.sni ? { 'grpc.ssl_target_name_override': tls.sni, 'grpc.default_authority': tls.sni } : {}),
      });
      this.clients.set(key, c);
      this.logger.debug({ cluster: cluster.name, host: hostKey }, 'grpc callout channel created');
    }
    return c;
  }

  private drop(key: string): void {
    this.clients.get(key)?.close();
    this.clients.delete(key);
  }

  private dropCluster(name: string): void {
    for (const key of [...this.clients.keys()]) if (key.startsWith(`${name}\0`)) this.drop(key);
  }
}

const identity = (b: Buffer): Buffer => b;

/**
 * A cluster's UpstreamTlsContext as grpc-js channel credentials. As Envoy: the server's chain is verified only
 * against a configured trusted_ca, and not at all without one; the client certificate is presented when set.
 * grpc-js takes no key passphrase, so an encrypted key is decrypted here.
 */
function tlsCredentials(tls: UpstreamTls): grpc.ChannelCredentials {
  const key = tls.key && tls.passphrase !== undefined
    ? Buffer.from(createPrivateKey({ key: tls.key, passphrase: tls.passphrase }).export({ type: 'pkcs8', format: 'pem' }))
    : tls.key;
  return grpcJs().credentials.createSsl(tls.ca ?? null, key ?? null, tls.cert ?? null, {
    rejectUnauthorized: tls.ca !== undefined,
    checkServerIdentity: () => undefined,
  });
}

function callOptions(request: GrpcCalloutRequest): grpc.CallOptions {
  return request.timeoutMs > 0 ? { deadline: Date.now() + request.timeoutMs } : {};
}

/** Plugin metadata pairs -> grpc Metadata; `-bin` keys carry raw bytes; pseudo-headers are not metadata. */
function toMetadata(pairs: HeaderPairs): grpc.Metadata {
  const md = new (grpcJs().Metadata)();
  for (const [k, v] of pairs) {
    if (k.startsWith(':')) continue;
    if (k.endsWith('-bin')) md.add(k, Buffer.from(v, 'latin1'));
    else md.add(k, v);
  }
  return md;
}

function fromMetadata(md: grpc.Metadata): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [k, values] of Object.entries(md.getMap())) {
    out.push([k, Buffer.isBuffer(values) ? values.toString('latin1') : String(values)]);
  }
  return out;
}
