;; A memory bomb: for a request with `x-grow`, proxy_on_request_headers grows memory until memory.grow
;; answers -1, then answers the request itself with a local 507 whose body is the page count it
;; reached (u32 LE), proving the failure reached the guest as -1 and the guest carried on. With a non-empty VM
;; configuration proxy_on_vm_start does the same and leaves the page count at address 64. Declares no maximum,
;; so only the host's cap stops it. Other requests continue.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 16) "x-grow")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; 16 MiB steps, then single pages: the exact page where grow fails, in a few hundred grows (V8 takes about
  ;; a millisecond per grow, so page by page to 1 GiB would take tens of seconds).
  (func $grow
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 256)) (i32.const -1)))
        (br $more)))
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (i32.store (i32.const 64) (memory.size)))
  (func (export "proxy_on_vm_start") (param $ctx i32) (param $size i32) (result i32)
    (if (local.get $size) (then (call $grow)))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 32) (i32.const 36)))
      (then
        (call $grow)
        ;; status 507, details "", body = 4 bytes at 64, no headers, grpc status -1
        (drop (call $reply (i32.const 507) (i32.const 0) (i32.const 0) (i32.const 64) (i32.const 4)
          (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
