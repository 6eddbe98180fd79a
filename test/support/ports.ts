/**
 * A loopback port that refuses connections, for "the upstream is down" cases. A port taken from the OS and
 * released again can be handed to another test process running in parallel before the sidecar connects (a 400
 * from someone else's server instead of a refusal); nothing listens on TCP port 1 (tcpmux is never run).
 */
export const REFUSED_PORT = 1;
