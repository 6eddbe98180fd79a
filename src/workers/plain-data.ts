import { WorkerError } from './protocol';

/**
 * What may cross into a worker in workerData: structured-clonable data that arrives meaning the same. The
 * structured clone drops prototypes without a word (a class instance arrives as a bare object, its methods gone)
 * and refuses functions, so the main thread checks before posting and names the path of whatever would not
 * survive. The one lossy case it accepts is Buffer, which arrives as a plain Uint8Array: the worker re-wraps
 * those with reviveBuffers().
 */

function isPlainProto(proto: unknown): boolean {
  return proto === Object.prototype || proto === null;
}

/** Throws a WorkerError naming the first path in `value` that a structured clone would not carry as it is. */
export function assertPlainData(value: unknown, path: string): void {
  const seen = new Set<object>();
  const walk = (v: unknown, at: string): void => {
    if (v === null || v === undefined) return;
    const type = typeof v;
    if (type === 'string' || type === 'number' || type === 'boolean' || type === 'bigint') return;
    if (type !== 'object') throw new WorkerError(`${at}: a ${type} cannot be posted to a worker`);
    const o = v as object;
    if (seen.has(o)) return;
    seen.add(o);
    // Buffers and typed arrays, RegExps, Dates and compiled Wasm modules are cloned as what they are.
    if (ArrayBuffer.isView(o) || o instanceof RegExp || o instanceof Date || o instanceof WebAssembly.Module) return;
    if (Array.isArray(o)) return o.forEach((x, i) => walk(x, `${at}[${i}]`));
    if (o instanceof Map) {
      for (const [k, x] of o) {
        walk(k, `${at}{key}`);
        walk(x, `${at}[${JSON.stringify(String(k))}]`);
      }
      return;
    }
    if (o instanceof Set) return [...o].forEach((x, i) => walk(x, `${at}{${i}}`));
    if (!isPlainProto(Object.getPrototypeOf(o))) {
      throw new WorkerError(`${at}: a ${o.constructor?.name ?? 'class instance'} cannot be posted to a worker (its prototype would be lost)`);
    }
    for (const [k, x] of Object.entries(o)) walk(x, at === '' ? k : `${at}.${k}`);
  };
  walk(value, path);
}

/** In place: every Uint8Array that is not a Buffer (a Buffer after a structured clone) becomes a Buffer over the same bytes. */
export function reviveBuffers<T>(value: T): T {
  const seen = new Set<object>();
  const revive = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    if (v === null || typeof v !== 'object' || seen.has(v) || ArrayBuffer.isView(v) || v instanceof RegExp || v instanceof Date) return v;
    if (v instanceof WebAssembly.Module) return v;
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = revive(v[i]);
    } else if (v instanceof Map) {
      for (const [k, x] of v) v.set(k, revive(x));
    } else if (!(v instanceof Set)) {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) o[k] = revive(o[k]);
    }
    return v;
  };
  return revive(value) as T;
}
