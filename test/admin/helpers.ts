/** Shared bits for the admin tests: real HTTP requests against a running AdminServer. */
import { request } from 'node:http';
import parsePrometheus from 'parse-prometheus-text-format';

export interface HttpResult {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export function http(port: number, path: string, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function getJson<T = Record<string, unknown>>(port: number, path: string): Promise<T> {
  const r = await http(port, path);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

/** /stats text as a map name -> value. */
export function statLines(body: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (!line) continue;
    const i = line.indexOf(': ');
    out.set(line.slice(0, i), line.slice(i + 2));
  }
  return out;
}

/** A parsed Prometheus exposition: family name -> {type, samples}. */
export function parseProm(text: string): Map<string, ReturnType<typeof parsePrometheus>[number]> {
  return new Map(parsePrometheus(text).map((f) => [f.name, f]));
}

/** The value of the sample of `family` whose labels match `labels` exactly. */
export function promValue(
  families: ReturnType<typeof parseProm>,
  family: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const f = families.get(family);
  const sample = f?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === JSON.stringify(Object.entries(labels).sort()));
  return sample?.value === undefined ? undefined : Number(sample.value);
}
