;; An ABI 0.1.0 module: header callbacks take 2 parameters, a missing header is OK with an empty value, and
;; proxy_get_configuration returns the plugin configuration. Results are stored at 256.. for the test to read:
;; [256] status of get_header_map_value(missing), [260] its size, [264] status of proxy_get_configuration,
;; [268] configuration size, [272] number of params seen (always 2 here), [276] proxy_continue_request,
;; [280] proxy_continue_response, [284] proxy_clear_route_cache.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_configuration" (func $cfg (param i32 i32) (result i32)))
  (import "env" "proxy_continue_request" (func $continue (result i32)))
  (import "env" "proxy_continue_response" (func $continue_response (result i32)))
  (import "env" "proxy_clear_route_cache" (func $clear_route_cache (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 16) "x-missing")
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (i32.store (i32.const 264) (call $cfg (i32.const 300) (i32.const 304)))
    (i32.store (i32.const 268) (i32.load (i32.const 304)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (result i32)
    (i32.store (i32.const 256) (call $get (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 320) (i32.const 324)))
    (i32.store (i32.const 260) (i32.load (i32.const 324)))
    (i32.store (i32.const 272) (i32.const 2))
    (i32.store (i32.const 276) (call $continue))
    (i32.store (i32.const 280) (call $continue_response))
    (i32.store (i32.const 284) (call $clear_route_cache))
    (i32.const 0)))
