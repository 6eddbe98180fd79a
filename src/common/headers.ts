/** A header map as Envoy keeps it: ordered, names lower-case, repeated names allowed. */
export type HeaderPairs = Array<[string, string]>;
