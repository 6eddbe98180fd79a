;; The smallest possible Higress Redis plugin, for measuring the host's own cost of the plugin path: per
;; request it sends a fixed `get bench:key` to cluster `bench-cluster` through proxy_redis_call, pauses, and on
;; the reply answers with a local 200 whose body is the reply bytes. Each proxy_on_tick also issues one GET from
;; the root context whose reply is only read from buffer 9 (plugin-issued GETs without an HTTP stream). No guest-side allocation or GC:
;; `malloc` hands out one scratch block, which is safe because every host copy is consumed immediately.
(module
  (import "env" "proxy_redis_init" (func $redis_init (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_call" (func $redis_call (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 16) "bench-cluster")
  (data (i32.const 64) "*2\0d\0a$3\0d\0aget\0d\0a$9\0d\0abench:key\0d\0a")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 131072))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $redis_init (i32.const 16) (i32.const 13) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000)))
    (i32.const 1))
  ;; token -> stream context id, in a 4096-slot ring at 4096 (tokens are seq<<2|3)
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (i32.eqz (call $redis_call (i32.const 16) (i32.const 13) (i32.const 64) (i32.const 28) (i32.const 200)))
      (then (i32.store
        (i32.add (i32.const 4096) (i32.shl (i32.and (i32.shr_u (i32.load (i32.const 200)) (i32.const 2)) (i32.const 4095)) (i32.const 2)))
        (local.get $ctx))))
    (i32.const 1))
  (func (export "proxy_on_tick") (param $root i32)
    (if (i32.eqz (call $redis_call (i32.const 16) (i32.const 13) (i32.const 64) (i32.const 28) (i32.const 200)))
      (then (i32.store
        (i32.add (i32.const 4096) (i32.shl (i32.and (i32.shr_u (i32.load (i32.const 200)) (i32.const 2)) (i32.const 4095)) (i32.const 2)))
        (i32.const 0)))))
  (func (export "proxy_on_redis_call_response") (param $root i32) (param $token i32) (param $status i32) (param $size i32)
    (local $stream i32)
    (local.set $stream (i32.load
      (i32.add (i32.const 4096) (i32.shl (i32.and (i32.shr_u (local.get $token) (i32.const 2)) (i32.const 4095)) (i32.const 2)))))
    (if (i32.eqz (local.get $stream)) (then
      (drop (call $get_buffer (i32.const 9) (i32.const 0) (local.get $size) (i32.const 300) (i32.const 304)))
      (return)))
    (drop (call $set_effective (i32.load
      (i32.add (i32.const 4096) (i32.shl (i32.and (i32.shr_u (local.get $token) (i32.const 2)) (i32.const 4095)) (i32.const 2))))))
    (drop (call $get_buffer (i32.const 9) (i32.const 0) (local.get $size) (i32.const 300) (i32.const 304)))
    (drop (call $local (i32.const 200) (i32.const 0) (i32.const 0) (i32.load (i32.const 300)) (i32.load (i32.const 304))
      (i32.const 0) (i32.const 0) (i32.const -1))))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
