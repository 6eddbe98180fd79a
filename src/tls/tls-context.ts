import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, PeerCertificate, TLSSocket } from 'node:tls';
import { ConfigError } from '../common/errors';
import { isObject, object, only, type JsonFields } from '../config/json-fields';

/**
 * Envoy's TLS transport socket configuration (envoy.extensions.transport_sockets.tls.v3 DownstreamTlsContext and
 * UpstreamTlsContext, proto3 JSON) read into node:tls options. Certificates come inline (`inline_string`,
 * `inline_bytes`), from a file, from an environment variable, or from a static bootstrap secret named by an
 * `sds_config`-less SDS reference (Envoy's static SDS). Every field that is not implemented is refused with its
 * path: a TLS context with a dropped `match_subject_alt_names` would accept peers the operator meant to refuse.
 * Key material is never logged: errors name the field, not its value.
 */

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const RAW_BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
export const RAW_BUFFER_NAME = 'envoy.transport_sockets.raw_buffer';

type Json = JsonFields;

/** static_resources.secrets by name (proto3 JSON). */
export type StaticSecrets = ReadonlyMap<string, Json>;

type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** What both directions share: the local certificate, the trusted CA, versions and ALPN. */
export interface CommonTls {
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly passphrase: string | undefined;
  /** validation_context.trusted_ca; undefined: the peer's certificate is not verified (Envoy). */
  readonly ca: Buffer | undefined;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  readonly alpn: readonly string[];
}

export interface DownstreamTls extends CommonTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** require_client_certificate: a client without a (valid) certificate fails the handshake. */
  readonly requireClientCertificate: boolean;
}

export interface UpstreamTls extends CommonTls {
  /** UpstreamTlsContext.sni; '' sends none. */
  readonly sni: string;
}

/**
 * node:tls client options for an UpstreamTlsContext (every upstream client takes these: undici, node:http2, the
 * ALPN probe). As Envoy: the server's chain is verified only against a configured trusted_ca, the host name
 * never without SAN matchers; SNI only when `sni` is set.
 */
export function upstreamTlsConnectOptions(tls: UpstreamTls): ConnectionOptions {
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
    ...(tls.sni ? { servername: tls.sni } : {}),
    rejectUnauthorized: tls.ca !== undefined,
    checkServerIdentity: () => undefined,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
  };
}

const VERSIONS: Readonly<Record<string, TlsVersion | 'AUTO'>> = {
  TLS_AUTO: 'AUTO', TLSv1_0: 'TLSv1', TLSv1_1: 'TLSv1.1', TLSv1_2: 'TLSv1.2', TLSv1_3: 'TLSv1.3',
  0: 'AUTO', 1: 'TLSv1', 2: 'TLSv1.1', 3: 'TLSv1.2', 4: 'TLSv1.3',
};

/** envoy.config.core.v3.DataSource. */
export function dataSource(v: unknown, path: string): Buffer {
  const ds = object(v, path);
  if (!ds) throw new ConfigError('is required', path);
  only(ds, ['filename', 'inline_string', 'inline_bytes', 'environment_variable'], path);
  if (typeof ds['filename'] === 'string') {
    try {
      return readFileSync(ds['filename']);
    } catch (err) {
      // Envoy: "Invalid path: ..." / "unable to read file"; the path is the operator's, not a secret.
      throw new ConfigError(`unable to read file: ${ds['filename']}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, `${path}.filename`, { cause: err });
    }
  }
  if (typeof ds['inline_string'] === 'string') return Buffer.from(ds['inline_string'], 'utf8');
  if (typeof ds['inline_bytes'] === 'string') return Buffer.from(ds['inline_bytes'], 'base64');
  if (typeof ds['environment_variable'] === 'string') {
    const value = process.env[ds['environment_variable']];
    if (value === undefined) throw new ConfigError(`environment variable ${ds['environment_variable']} is not set`, `${path}.environment_variable`);
    return Buffer.from(value, 'utf8');
  }
  throw new ConfigError('needs filename, inline_string, inline_bytes or environment_variable', path);
}

/** An SDS reference without sds_config: a static secret of the bootstrap. */
function staticSecret(ref: unknown, kind: 'tls_certificate' | 'validation_context', secrets: StaticSecrets, path: string): { value: Json; path: string } {
  const r = object(ref, path) ?? {};
  only(r, ['name', 'sds_config'], path);
  if (r['sds_config'] !== undefined && r['sds_config'] !== null) throw new ConfigError('dynamic SDS is not supported; name a static_resources.secrets entry without sds_config', `${path}.sds_config`);
  const name = typeof r['name'] === 'string' ? r['name'] : '';
  const secret = secrets.get(name);
  // Envoy: "Unknown static secret: <name>" / "Unknown static certificate validation context: <name>".
  if (!secret) throw new ConfigError(kind === 'tls_certificate' ? `Unknown static secret: ${name}` : `Unknown static certificate validation context: ${name}`, `${path}.name`);
  const value = object(secret[kind], `static_resources.secrets[${name}].${kind}`);
  if (!value) throw new ConfigError(`static secret '${name}' has no ${kind}`, `${path}.name`);
  return { value, path: `static_resources.secrets[${name}].${kind}` };
}

function tlsCertificate(v: Json, path: string): { cert: Buffer; key: Buffer; passphrase: string | undefined } {
  only(v, ['certificate_chain', 'private_key', 'password'], path);
  const passphrase = v['password'] === undefined || v['password'] === null ? undefined : dataSource(v['password'], `${path}.password`).toString('utf8');
  return { cert: dataSource(v['certificate_chain'], `${path}.certificate_chain`), key: dataSource(v['private_key'], `${path}.private_key`), passphrase };
}

function validationContext(v: Json, path: string): Buffer | undefined {
  only(v, ['trusted_ca'], path);
  return v['trusted_ca'] === undefined || v['trusted_ca'] === null ? undefined : dataSource(v['trusted_ca'], `${path}.trusted_ca`);
}

function version(v: unknown, path: string, fallback: TlsVersion): TlsVersion {
  if (v === undefined || v === null) return fallback;
  const ver = VERSIONS[String(v)];
  if (!ver) throw new ConfigError(`unknown TLS version ${String(v)}`, path);
  return ver === 'AUTO' ? fallback : ver;
}

function commonTlsContext(v: unknown, path: string, secrets: StaticSecrets): CommonTls {
  const c = object(v, path) ?? {};
  only(c, ['tls_params', 'tls_certificates', 'tls_certificate_sds_secret_configs', 'validation_context', 'validation_context_sds_secret_config', 'alpn_protocols'], path);
  const params = object(c['tls_params'], `${path}.tls_params`) ?? {};
  only(params, ['tls_minimum_protocol_version', 'tls_maximum_protocol_version'], `${path}.tls_params`);
  const certs: Array<{ value: Json; path: string }> = [];
  (Array.isArray(c['tls_certificates']) ? c['tls_certificates'] : []).forEach((t, i) => certs.push({ value: object(t, `${path}.tls_certificates[${i}]`) ?? {}, path: `${path}.tls_certificates[${i}]` }));
  (Array.isArray(c['tls_certificate_sds_secret_configs']) ? c['tls_certificate_sds_secret_configs'] : []).forEach((r, i) => certs.push(staticSecret(r, 'tls_certificate', secrets, `${path}.tls_certificate_sds_secret_configs[${i}]`)));
  if (certs.length > 1) throw new ConfigError('one certificate is supported (Envoy selects among several by key type and SNI)', `${path}.tls_certificates`);
  const cert = certs[0] ? tlsCertificate(certs[0].value, certs[0].path) : undefined;
  let ca: Buffer | undefined;
  const vc = object(c['validation_context'], `${path}.validation_context`);
  if (vc && c['validation_context_sds_secret_config'] !== undefined) throw new ConfigError('only one of validation_context or validation_context_sds_secret_config', `${path}.validation_context`);
  if (vc) ca = validationContext(vc, `${path}.validation_context`);
  else if (c['validation_context_sds_secret_config'] !== undefined) {
    const s = staticSecret(c['validation_context_sds_secret_config'], 'validation_context', secrets, `${path}.validation_context_sds_secret_config`);
    ca = validationContext(s.value, s.path);
  }
  const alpn = (Array.isArray(c['alpn_protocols']) ? c['alpn_protocols'] : []).map((p, i) => {
    if (typeof p !== 'string' || p === '') throw new ConfigError('must be a non-empty string', `${path}.alpn_protocols[${i}]`);
    return p;
  });
  return {
    cert: cert?.cert,
    key: cert?.key,
    passphrase: cert?.passphrase,
    ca,
    // Envoy's defaults: TLSv1.2 through TLSv1.3 on both sides.
    minVersion: version(params['tls_minimum_protocol_version'], `${path}.tls_params.tls_minimum_protocol_version`, 'TLSv1.2'),
    maxVersion: version(params['tls_maximum_protocol_version'], `${path}.tls_params.tls_maximum_protocol_version`, 'TLSv1.3'),
    alpn,
  };
}

/** A transport_socket: undefined for none or raw_buffer, the typed TLS context otherwise (refused if neither). */
export function transportSocket(v: unknown, path: string, expected: typeof DOWNSTREAM_TLS_TYPE | typeof UPSTREAM_TLS_TYPE): Json | undefined {
  const ts = object(v, path);
  if (!ts) return undefined;
  only(ts, ['name', 'typed_config'], path);
  const tc = object(ts['typed_config'], `${path}.typed_config`);
  const type = typeof tc?.['@type'] === 'string' ? tc['@type'] : '';
  if (type === RAW_BUFFER_TYPE || (type === '' && (ts['name'] === RAW_BUFFER_NAME || ts['name'] === undefined))) return undefined;
  if (type !== expected) throw new ConfigError(`transport socket '${type || String(ts['name'])}' is not supported (${expected.split('.').pop()} or raw_buffer)`, `${path}.typed_config.@type`);
  const { '@type': _t, ...rest } = tc!;
  return rest;
}

export function downstreamTlsContext(v: Json, path: string, secrets: StaticSecrets): DownstreamTls {
  only(v, ['common_tls_context', 'require_client_certificate'], path);
  const common = commonTlsContext(v['common_tls_context'], `${path}.common_tls_context`, secrets);
  if (!common.cert || !common.key) throw new ConfigError('a listener needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)', `${path}.common_tls_context`);
  const rcc = v['require_client_certificate'];
  const require = rcc === true || (isObject(rcc) && rcc['value'] === true);
  // Envoy: "ca_cert is required when require_client_certificate is set" (there is nothing to verify against).
  if (require && !common.ca) throw new ConfigError('require_client_certificate needs validation_context.trusted_ca', `${path}.require_client_certificate`);
  return { ...common, cert: common.cert, key: common.key, requireClientCertificate: require };
}

export function upstreamTlsContext(v: Json, path: string, secrets: StaticSecrets): UpstreamTls {
  only(v, ['common_tls_context', 'sni'], path);
  const common = commonTlsContext(v['common_tls_context'], `${path}.common_tls_context`, secrets);
  return { ...common, sni: typeof v['sni'] === 'string' ? v['sni'] : '' };
}

/** The facts Envoy's connection.* / upstream.* TLS attributes expose about one TLS connection. */
export interface TlsConnectionInfo {
  /** TLSv1.2, TLSv1.3 (Ssl::ConnectionInfo::tlsVersion). */
  readonly version: string;
  /** The SNI the client sent ('' for none). */
  readonly serverName: string;
  /** A peer certificate was presented and verified. */
  readonly peerVerified: boolean;
  readonly peer: CertificateFacts | undefined;
  readonly local: CertificateFacts | undefined;
}

export interface CertificateFacts {
  /** RFC 2253 form, as Envoy prints it (most specific RDN first, comma separated). */
  readonly subject: string;
  /** Lower-case hex SHA-256 of the DER certificate. */
  readonly sha256: string;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
}

function rfc2253(x509: X509Certificate): string {
  // node prints the subject one RDN a line, least specific first; RFC 2253 reverses the order.
  return x509.subject.split('\n').filter((l) => l !== '').reverse().join(',');
}

function sans(x509: X509Certificate, prefix: string): string[] {
  const out: string[] = [];
  for (const part of (x509.subjectAltName ?? '').split(', ')) if (part.startsWith(prefix)) out.push(part.slice(prefix.length));
  return out;
}

export function certificateFacts(der: Buffer | undefined): CertificateFacts | undefined {
  if (!der || der.length === 0) return undefined;
  const x509 = new X509Certificate(der);
  return { subject: rfc2253(x509), sha256: x509.fingerprint256.replace(/:/g, '').toLowerCase(), uriSans: sans(x509, 'URI:'), dnsSans: sans(x509, 'DNS:') };
}

/** Reads what the attributes need from an established TLS socket (once per connection). */
export function tlsConnectionInfo(socket: TLSSocket): TlsConnectionInfo {
  const peer = socket.getPeerCertificate(false) as PeerCertificate | Record<string, never>;
  const peerDer = 'raw' in peer ? peer.raw : undefined;
  const local = socket.getCertificate() as PeerCertificate | Record<string, never> | null;
  const localDer = local && 'raw' in local ? local.raw : undefined;
  const sni = (socket as TLSSocket & { servername?: string | false }).servername;
  return {
    version: socket.getProtocol() ?? '',
    serverName: typeof sni === 'string' ? sni : '',
    peerVerified: peerDer !== undefined && socket.authorized,
    peer: certificateFacts(peerDer),
    local: certificateFacts(localDer),
  };
}
