/**
 * The soak's sidecar, in a process of its own so that its file descriptors and RSS are its own: the Sidecar
 * class `proxy-wasm-sidecar run -c` runs, started on the bootstrap file given as argv[2]. Over IPC it reports its
 * listener port once started, and answers `sample` with what only the process itself can see: the guest memory
 * of each distinct plugin VM (linear memory bytes) and whether any VM failed.
 */
import { Sidecar } from '../../src/main';
import { createLogger } from '../../src/common/logger';

interface SampleReply {
  readonly type: 'sample';
  readonly id: number;
  readonly guestMemory: number;
  readonly vms: number;
  readonly failedVms: number;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file || !process.send) throw new Error('usage: fork(sidecar-process.js, [bootstrap.json]) with an IPC channel');
  const sidecar = await Sidecar.start({ configFile: file, logger: createLogger('warn'), drainTimeoutMs: 2000 });
  process.send({ type: 'ready', port: sidecar.listeners[0]!.port });
  process.on('message', (msg: { type: string; id: number }) => {
    if (msg.type === 'sample') {
      const vms = new Set(sidecar.plugins.map((p) => p.vm));
      let guestMemory = 0;
      let failedVms = 0;
      for (const vm of vms) {
        guestMemory += vm.memory.size;
        if (vm.failed) failedVms++;
      }
      const reply: SampleReply = { type: 'sample', id: msg.id, guestMemory, vms: vms.size, failedVms };
      process.send!(reply);
    } else if (msg.type === 'stop') {
      void sidecar.stop().then(() => process.exit(0));
    }
  });
  process.once('SIGTERM', () => void sidecar.stop().then(() => process.exit(0)));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
