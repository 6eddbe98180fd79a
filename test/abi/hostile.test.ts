import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';

test('bad pointers and unknown enum values return statuses, never a trap', async () => {
  const host = await HostEmulator.load(pluginPath('hostile'), { configuration: 'some configuration' });
  host.tick();
  const mem = host.plugin.vm.memory;
  assert.equal(host.plugin.failed, undefined, 'the VM survives');
  assert.equal(mem.getU32(508), 20, 'every probe ran');
  const statuses = Array.from({ length: 20 }, (_, i) => mem.getU32(512 + i * 4));
  assert.deepEqual(statuses, [
    6, // proxy_log with an out-of-range message
    2, // proxy_log with level 9
    6, // get_buffer_bytes writing to an out-of-range return pointer
    2, // get_buffer_bytes of buffer type 99
    6, // set_shared_data with an out-of-range key
    1, // get_shared_data of a missing key
    2, // define_metric of type 7
    6, // get_current_time_nanoseconds to an out-of-range pointer
    2, // set_effective_context of an unknown id
    6, // redis_call with an out-of-range cluster
    6, // redis_call with an unwritable token pointer
    2, // get_header_map_value of map type 99
    6, // get_property with an out-of-range path
    1, // enqueue_shared_queue of an unknown queue
    1, // call_foreign_function of an unknown name
    2, // continue_stream of stream type 7
    6, // send_local_response with out-of-range details
    6, // set_header_map_pairs with out-of-range pairs (memory is checked first, as cpp-host)
    1, // record_metric of an unknown id
    2, // get_buffer_bytes with start + max overflowing u32
  ]);
  host.close();
});
