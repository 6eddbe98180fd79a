/** A header map as Envoy keeps it: ordered, names lower-case, repeated names allowed. */
export type HeaderPairs = Array<[string, string]>;

/** The first value of a header (names are lower-case in a HeaderPairs map). */
export function getHeader(headers: HeaderPairs, name: string): string | undefined {
  for (const [k, v] of headers) if (k === name) return v;
  return undefined;
}
