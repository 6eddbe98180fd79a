import type { Socket } from 'node:net';

/**
 * Envoy's tls_inspector listener filter: reads the first bytes of a connection, and when they are a TLS
 * ClientHello takes its SNI and ALPN for filter chain matching. The bytes are put back for whoever serves the
 * connection. A connection that sends nothing within `timeoutMs` (Envoy's listener_filters_timeout, 15 s) is
 * closed, as Envoy does unless continue_on_listener_filters_timeout.
 */

export interface ClientHelloFacts {
  readonly tls: boolean;
  readonly serverName: string;
  readonly alpn: readonly string[];
}

/** Envoy's tls_inspector reads at most 64 KiB of ClientHello (max_client_hello_size). */
const MAX_CLIENT_HELLO = 64 * 1024;
export const DEFAULT_LISTENER_FILTERS_TIMEOUT_MS = 15_000;

const NOT_TLS: ClientHelloFacts = { tls: false, serverName: '', alpn: [] };

/**
 * Parses what has arrived: facts when decided, undefined when more bytes are needed. A record that is not a
 * handshake, or a handshake that is not a ClientHello, is "not TLS" (raw_buffer), as in Envoy.
 */
export function parseClientHello(buf: Buffer): ClientHelloFacts | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] !== 0x16) return NOT_TLS;
  if (buf.length < 5) return undefined;
  if (buf[1] !== 0x03) return NOT_TLS;
  // The handshake message may span records; gather their payloads.
  const payload: Buffer[] = [];
  let off = 0;
  let have = 0;
  let need = -1;
  while (off + 5 <= buf.length) {
    if (buf[off] !== 0x16) return NOT_TLS;
    const len = buf.readUInt16BE(off + 3);
    if (off + 5 + len > buf.length) break;
    payload.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = Buffer.concat(payload);
      if (hs[0] !== 0x01) return NOT_TLS;
      need = 4 + hs.readUIntBE(1, 3);
    }
    if (need >= 0 && have >= need) return clientHelloFacts(Buffer.concat(payload).subarray(4, need));
  }
  if (buf.length >= MAX_CLIENT_HELLO) return { tls: true, serverName: '', alpn: [] };
  return undefined;
}

function clientHelloFacts(body: Buffer): ClientHelloFacts {
  let serverName = '';
  const alpn: string[] = [];
  try {
    let p = 2 + 32; // client_version, random
    p += 1 + body[p]!; // session_id
    p += 2 + body.readUInt16BE(p); // cipher_suites
    p += 1 + body[p]!; // compression_methods
    if (p + 2 > body.length) return { tls: true, serverName, alpn };
    const end = Math.min(body.length, p + 2 + body.readUInt16BE(p));
    p += 2;
    while (p + 4 <= end) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      const ext = body.subarray(p + 4, p + 4 + len);
      p += 4 + len;
      if (type === 0 && ext.length >= 5 && ext[2] === 0) {
        const n = ext.readUInt16BE(3);
        serverName = ext.subarray(5, 5 + n).toString('latin1').toLowerCase();
      } else if (type === 16 && ext.length >= 2) {
        let q = 2;
        const listEnd = Math.min(ext.length, 2 + ext.readUInt16BE(0));
        while (q < listEnd) {
          const n = ext[q]!;
          alpn.push(ext.subarray(q + 1, q + 1 + n).toString('latin1'));
          q += 1 + n;
        }
      }
    }
  } catch {
    // A truncated extension block: what was read so far stands (Envoy's parser likewise stops).
  }
  return { tls: true, serverName, alpn };
}

/** Peeks the ClientHello of `socket`, puts the bytes back (socket left paused), then calls `done` (never, if the socket closes first). */
export function inspectClientHello(socket: Socket, done: (facts: ClientHelloFacts) => void, timeoutMs = DEFAULT_LISTENER_FILTERS_TIMEOUT_MS): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const finish = (facts: ClientHelloFacts): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    socket.unshift(seen);
    // Left paused: a TLS server reads the unshifted bytes itself; a plaintext codec resumes the socket.
    done(facts);
  };
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const facts = parseClientHello(seen);
    if (facts) finish(facts);
  };
  const onClose = (): void => clearTimeout(timer);
  socket.on('data', onData);
  socket.on('close', onClose);
}
