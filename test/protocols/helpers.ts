import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, type BootstrapSpec, type TempDir } from '../http/helpers';

export type Json = Record<string, any>;

/** A throwaway PKI made with Debian's openssl at test time (never committed): a CA, a server and a client. */
export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A second CA and a client it signed: a certificate the listener's CA does not trust. */
  readonly otherClientCert: string;
  readonly otherClientKey: string;
  readonly files: { readonly ca: string; readonly serverCert: string; readonly serverKey: string; readonly clientCert: string; readonly clientKey: string };
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function issue(cwd: string, name: string, ca: string, subject: string, ext: string): void {
  writeFileSync(join(cwd, `${name}.ext`), ext);
  openssl(cwd, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  openssl(cwd, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
}

export function makePki(tmp: TempDir): TestPki {
  const dir = tmp.path;
  for (const ca of ['ca', 'other-ca']) {
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/O=Test/CN=${ca}`);
  }
  issue(dir, 'server', 'ca', '/O=Test/CN=server.test', 'subjectAltName=DNS:server.test,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue(dir, 'client', 'ca', '/C=US/O=Test/CN=client', 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/client,DNS:client.test\nextendedKeyUsage=clientAuth\n');
  issue(dir, 'other-client', 'other-ca', '/O=Other/CN=intruder', 'extendedKeyUsage=clientAuth\n');
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    caCert: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    otherClientCert: read('other-client.crt'),
    otherClientKey: read('other-client.key'),
    files: { ca: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'), clientCert: join(dir, 'client.crt'), clientKey: join(dir, 'client.key') },
  };
}

export interface Shape {
  readonly doc: Json;
  readonly listener: Json;
  readonly chain: Json;
  readonly hcm: Json;
  readonly clusters: Json[];
}

export function shape(doc: Json): Shape {
  const listener = doc['static_resources']['listeners'][0];
  const chain = listener['filter_chains'][0];
  return { doc, listener, chain, hcm: chain['filters'][0]['typed_config'], clusters: doc['static_resources']['clusters'] };
}

/** A bootstrap from test/http/helpers.ts, reshaped by `edit`, started as a sidecar. */
export async function startShapedSidecar(tmp: TempDir, spec: BootstrapSpec, edit: (s: Shape) => void, options: { readonly concurrency?: number } = {}): Promise<{ sidecar: Sidecar; port: number; adminUrl: string | undefined }> {
  const doc = bootstrapJson(spec) as Json;
  edit(shape(doc));
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, doc);
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000, ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}) });
  const admin = sidecar.admin?.boundAddress();
  return { sidecar, port: sidecar.publicListeners[0]!.port, adminUrl: admin ? `http://127.0.0.1:${admin.port}` : undefined };
}

export function downstreamTls(common: Json, extra: Json = {}): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', common_tls_context: common, ...extra },
  };
}

export function upstreamTls(common: Json, extra: Json = {}): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: common, ...extra },
  };
}

export function hex(s: string): string {
  return Buffer.from(s).toString('hex');
}
