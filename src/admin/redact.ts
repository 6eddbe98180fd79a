/**
 * Redaction for everything the admin prints (/config_dump, /server_info). Envoy redacts fields marked
 * `udpa.annotations.sensitive` (MessageUtil::redact) and prints "[redacted]"; we work on proto3 JSON, so the rule
 * is by field name, plus the places where Higress plugins keep credentials in free text:
 *
 * - any key that names a credential (password, secret, token, api_key, private_key, ...) has its whole value
 *   replaced, whatever its type (so `private_key: {inline_string: ...}` goes as a whole);
 * - inside a `secrets` list (static SDS secrets) every `inline_bytes`/`inline_string` is replaced;
 * - `google.protobuf.StringValue`/`BytesValue` Anys (a Wasm plugin's `configuration`) and string fields named
 *   `configuration`: JSON text is parsed, redacted by the rules above and re-serialized; other text has
 *   `password=...`, `password: ...`, `"password":"..."` values and URL user-info passwords masked;
 * - every other string goes through the same text rules (a `config_yaml` option, a URL with user-info).
 *
 * The input is never modified.
 */

export const REDACTED = '[redacted]';

const SENSITIVE_KEYS = new Set([
  'password',
  'passwd',
  'pwd',
  'pass',
  'secret',
  'token',
  'apikey',
  'accesskey',
  'secretkey',
  'privatekey',
  'clientsecret',
  'accesstoken',
  'refreshtoken',
  'authtoken',
  'bearertoken',
  'idtoken',
  'sessiontoken',
  'credential',
  'credentials',
  'authorization',
  'proxyauthorization',
  'inlinesecret',
]);

const SENSITIVE_SUFFIXES = ['password', 'passwd', 'secret', 'token', 'apikey', 'privatekey', 'secretkey', 'accesskey'];

const STRING_VALUE = 'type.googleapis.com/google.protobuf.StringValue';
const BYTES_VALUE = 'type.googleapis.com/google.protobuf.BytesValue';

/** Is a field with this name a credential? Case, `_` and `-` are ignored (`api_key`, `apiKey`, `API-KEY`). */
export function isSensitiveKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_]/g, '');
  if (SENSITIVE_KEYS.has(k)) return true;
  return SENSITIVE_SUFFIXES.some((s) => k.endsWith(s));
}

const KEY_ALTERNATION =
  'password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token';
/** `key=value`, `key: value`, `"key": "value"`, `'key' = 'value'` in free text. */
const TEXT_PAIR = new RegExp(
  `((?:^|[^A-Za-z0-9])["']?(?:[A-Za-z0-9]+[_-])*(?:${KEY_ALTERNATION})["']?\\s*[:=]\\s*)("(?:[^"\\\\]|\\\\.)*"|'[^']*'|[^\\s&;,}\\]]+)`,
  'gi',
);
/** `scheme://user:password@host`. */
const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/[^:/@\s]*:)([^@\s/]+)(@)/g;

/** Masks credentials in free text (a plugin configuration that is not JSON, a command line, a URL). */
export function redactText(text: string): string {
  const parsed = parseJsonObject(text);
  if (parsed !== undefined) {
    const redacted = JSON.stringify(redactJson(parsed));
    return redacted === JSON.stringify(parsed) ? text : redacted;
  }
  return text
    .replace(TEXT_PAIR, (_m, prefix: string, value: string) => {
      const quote = value.startsWith('"') ? '"' : value.startsWith("'") ? "'" : '';
      return `${prefix}${quote}${REDACTED}${quote}`;
    })
    .replace(URL_USERINFO, (_m, head: string, _pw: string, at: string) => `${head}${REDACTED}${at}`);
}

function parseJsonObject(text: string): unknown {
  const t = text.trim();
  if (!(t.startsWith('{') || t.startsWith('['))) return undefined;
  try {
    return JSON.parse(t) as unknown;
  } catch {
    return undefined;
  }
}

/** Returns a redacted deep copy of a JSON value. */
export function redactJson<T>(value: T): T {
  return walk(value, false) as T;
}

function walk(value: unknown, inSecrets: boolean): unknown {
  if (Array.isArray(value)) return value.map((v) => walk(v, inSecrets));
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? redactText(value) : value;
  const obj = value as Record<string, unknown>;
  const type = obj['@type'];
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(obj)) {
    if (key === '@type') {
      out[key] = v;
    } else if (isSensitiveKey(key)) {
      out[key] = REDACTED;
    } else if (inSecrets && (key === 'inline_bytes' || key === 'inline_string' || key === 'inlineBytes' || key === 'inlineString')) {
      out[key] = REDACTED;
    } else if (key === 'value' && type === STRING_VALUE && typeof v === 'string') {
      out[key] = redactText(v);
    } else if (key === 'value' && type === BYTES_VALUE && typeof v === 'string') {
      out[key] = redactBase64(v);
    } else {
      out[key] = walk(v, inSecrets || key === 'secrets');
    }
  }
  return out;
}

function redactBase64(b64: string): string {
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const redacted = redactText(text);
  return redacted === text ? b64 : Buffer.from(redacted, 'utf8').toString('base64');
}
