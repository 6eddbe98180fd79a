;; A runaway plugin for the watchdog tests: proxy_on_request_headers never returns for a request with the
;; header `x-loop` (a bare `loop br`), or with `x-spin` (a counting loop that recurses when it wraps);
;; other requests continue untouched, so the same VM can be seen serving before and after.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 16) "x-loop")
  (data (i32.const 24) "x-spin")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  ;; Counts to 2^32 and over again: a loop that does work on every iteration, not just a branch.
  (func $spin (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.ne (local.get $i) (i32.const 0)))
      (call $spin)))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 36)))
      (then (loop $forever (br $forever))))
    (if (i32.eqz (call $get (i32.const 0) (i32.const 24) (i32.const 6) (i32.const 32) (i32.const 36)))
      (then (call $spin)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
