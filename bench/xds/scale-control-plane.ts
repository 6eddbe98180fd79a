import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { CDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL } from '../../src/xds/type-urls';
import { cla, edsCluster } from '../../test/support/xds-fixtures';
import { listener, routeConfig } from '../../test/xds/support';

/**
 * The control plane of the LDS/RDS scale bench, in a process of its own (so the sidecar's RSS and CPU are its
 * own): `clusters` EDS clusters with one CLA each, `listeners` HTTP listeners whose HCMs take routes from RDS,
 * one route configuration per listener. IPC messages: `{ id, op: 'route', index, gen }` changes one route
 * configuration and pushes it (replies `{ id }`); `{ id, op: 'close' }`. The first message sent is `{ target }`.
 */
export const clusterName = (i: number): string => `outbound|80||svc-${i}.default.svc.cluster.local`;
export const routeName = (i: number): string => `route-${i}`;

async function main(): Promise<void> {
  const clusters = Number(process.argv[2] ?? 10_000);
  const listeners = Number(process.argv[3] ?? 1_000);
  const server = await XdsTestServer.start();
  server.set(CDS_TYPE_URL, Array.from({ length: clusters }, (_, i) => edsCluster(clusterName(i))));
  server.set(EDS_TYPE_URL, Array.from({ length: clusters }, (_, i) => cla(clusterName(i), [[`10.${(i >> 8) & 255}.${i & 255}.1`, 80]])));
  server.set(LDS_TYPE_URL, Array.from({ length: listeners }, (_, i) => listener(`listener-${i}`, 20_000 + i, routeName(i))));
  server.set(RDS_TYPE_URL, Array.from({ length: listeners }, (_, i) => routeConfig(routeName(i), clusterName(i % clusters), [`svc-${i}.example`])));
  process.on('message', (m: { id: number; op: string; index?: number; gen?: number }) => {
    if (m.op === 'route') {
      const i = m.index ?? 0;
      server.upsert(RDS_TYPE_URL, [routeConfig(routeName(i), clusterName((i + (m.gen ?? 1)) % clusters), [`svc-${i}.example`])]);
      server.push(RDS_TYPE_URL);
      process.send?.({ id: m.id });
    } else if (m.op === 'close') {
      void server.close().then(() => {
        process.send?.({ id: m.id });
        process.exit(0);
      });
    }
  });
  process.send?.({ target: server.target });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
