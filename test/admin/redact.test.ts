import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED, isSensitiveKey, redactJson, redactText } from '../../src/admin/redact';

test('keys that name credentials are redacted whole, whatever their value', () => {
  const input = {
    name: 'x',
    password: 'p1',
    redis: { service_name: 'redis.svc', servicePort: 6379, Password: 'p2', api_key: { inline_string: 'k' }, apiKey: 'k2' },
    tls: { private_key: { inline_string: '-----BEGIN KEY-----' }, certificate_chain: { filename: '/etc/c.pem' } },
    list: [{ token: 't' }, { client_secret: 's' }],
    max_tokens: 100,
  };
  const out = redactJson(input);
  assert.equal(out.password, REDACTED);
  assert.equal(out.redis.Password, REDACTED);
  assert.equal(out.redis.api_key as unknown, REDACTED);
  assert.equal(out.redis.apiKey, REDACTED);
  assert.equal(out.redis.service_name, 'redis.svc');
  assert.equal(out.tls.private_key as unknown, REDACTED);
  assert.deepEqual(out.tls.certificate_chain, { filename: '/etc/c.pem' });
  assert.deepEqual(out.list, [{ token: REDACTED }, { client_secret: REDACTED }]);
  assert.equal(out.max_tokens, 100);
  assert.equal(input.password, 'p1', 'input untouched');
});

test('names of secrets are not secrets', () => {
  for (const k of ['sds_config', 'tls_certificate_sds_secret_configs', 'token_bucket', 'max_tokens', 'service_name', 'pass_through_mode']) {
    assert.equal(isSensitiveKey(k), false, k);
  }
  for (const k of ['password', 'redis_password', 'clientSecret', 'API-KEY', 'access_token', 'secret', 'credentials']) {
    assert.equal(isSensitiveKey(k), true, k);
  }
});

test('a Wasm plugin configuration (StringValue Any with JSON) is parsed and redacted', () => {
  const config = JSON.stringify({ redis: { service_name: 'r', password: 'hunter2' }, _rules_: [{ _match_route_: ['a'], token: 'sk-123' }] });
  const wasm = {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
    config: { name: 'p', configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: config } },
  };
  const out = redactJson(wasm);
  const text = JSON.stringify(out);
  assert.ok(!text.includes('hunter2') && !text.includes('sk-123'), text);
  const parsed = JSON.parse(out.config.configuration.value) as { redis: { service_name: string; password: string } };
  assert.equal(parsed.redis.password, REDACTED);
  assert.equal(parsed.redis.service_name, 'r');
});

test('BytesValue configurations and plain-text configurations', () => {
  const b64 = Buffer.from('cluster=redis\npassword=hunter2\ntimeout=100').toString('base64');
  const out = redactJson({ configuration: { '@type': 'type.googleapis.com/google.protobuf.BytesValue', value: b64 } });
  const decoded = Buffer.from(out.configuration.value, 'base64').toString('utf8');
  assert.equal(decoded, `cluster=redis\npassword=${REDACTED}\ntimeout=100`);
  assert.equal(redactText('a=1&password=x&b=2'), `a=1&password=${REDACTED}&b=2`);
  assert.equal(redactText('redis_password: "s p"'), `redis_password: "${REDACTED}"`);
  assert.equal(redactText('url redis://user:hunter2@10.0.0.1:6379/0'), `url redis://user:${REDACTED}@10.0.0.1:6379/0`);
  assert.equal(redactText('{"password":"x","a":1}'), `{"password":"${REDACTED}","a":1}`);
  assert.equal(redactText('nothing to hide'), 'nothing to hide');
  assert.equal(redactText('{ "a" : 1 }'), '{ "a" : 1 }', 'JSON without secrets keeps its formatting');
  const opts = redactJson({ config_yaml: 'admin: {}\nredis_password: hunter2\n', upstream: 'redis://:pw@r:6379' });
  assert.equal(opts.config_yaml, `admin: {}\nredis_password: ${REDACTED}\n`);
  assert.equal(opts.upstream, `redis://:${REDACTED}@r:6379`);
});

test('inline data sources inside static secrets are redacted', () => {
  const out = redactJson({
    static_resources: {
      secrets: [
        { name: 'cert', tls_certificate: { certificate_chain: { inline_string: 'CERT' }, private_key: { inline_bytes: 'S0VZ' } } },
        { name: 'generic', generic_secret: { secret: { inline_string: 'shh' } } },
      ],
    },
  });
  assert.ok(!JSON.stringify(out).includes('S0VZ') && !JSON.stringify(out).includes('shh') && !JSON.stringify(out).includes('CERT'));
  assert.equal(out.static_resources.secrets[0]!.name, 'cert');
});
