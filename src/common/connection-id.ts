/** Envoy numbers downstream connections process-wide (connection.id / connection_id), HTTP and TCP alike. */
let next = 0;

export function nextConnectionId(): number {
  return next++;
}
