;; Imports exactly the WASI set a Go 1.24 `GOOS=wasip1 -buildmode=c-shared` Higress plugin imports
;; (proxy-wasm-abi.md §9, higress-abi.md §6.1), including fd_write twice, plus a few env.proxy_* calls.
;; Exports what such a module exports: _initialize, proxy_on_memory_allocate, the 0_2_100 marker.
;; _initialize prints to stdout, reads a clock with an i64 precision, draws random bytes and scans preopens
;; (fd_prestat_get must answer BADF). proxy_on_vm_start logs the WASI environment it sees.
(module
  (import "wasi_snapshot_preview1" "sched_yield" (func $sched_yield (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write2 (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_init" (func $proxy_redis_init (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_call" (func $proxy_redis_call (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 32768))
  (data (i32.const 16) "go init\n")
  ;; iovec at 64: {ptr=16, len=8}
  (data (i32.const 64) "\10\00\00\00\08\00\00\00")
  (data (i32.const 128) "env=")
  (func (export "proxy_abi_version_0_2_100"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (if (i32.eqz (local.get $size)) (then unreachable)) ;; Go's allocator panics on 0
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "_initialize")
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
    ;; realtime clock, precision as an i64
    (if (call $clock_time_get (i32.const 0) (i64.const 1000) (i32.const 80)) (then unreachable))
    (if (i64.eqz (i64.load (i32.const 80))) (then unreachable))
    (if (call $random_get (i32.const 96) (i32.const 16)) (then unreachable))
    ;; preopen scan: fd 3 must be BADF (8)
    (if (i32.ne (call $fd_prestat_get (i32.const 3) (i32.const 112)) (i32.const 8)) (then unreachable))
    (if (call $args_sizes_get (i32.const 112) (i32.const 116)) (then unreachable))
    (if (i32.load (i32.const 112)) (then unreachable)) ;; argc must be 0
    (drop (call $sched_yield)))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; Logs "env=<NAME=VALUE NAME=VALUE ...>" built from environ_get.
  (func (export "proxy_on_vm_start") (param $ctx i32) (param $size i32) (result i32)
    (local $count i32) (local $bytes i32) (local $i i32) (local $end i32)
    (if (call $environ_sizes_get (i32.const 200) (i32.const 204)) (then unreachable))
    (local.set $count (i32.load (i32.const 200)))
    (local.set $bytes (i32.load (i32.const 204)))
    ;; pointers at 4096, strings right after "env=" at 132
    (if (call $environ_get (i32.const 4096) (i32.const 132)) (then unreachable))
    (local.set $end (i32.add (i32.const 132) (local.get $bytes)))
    ;; turn the NUL separators into spaces
    (local.set $i (i32.const 132))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (if (i32.eqz (i32.load8_u (local.get $i))) (then (i32.store8 (local.get $i) (i32.const 32))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (drop (call $proxy_log (i32.const 2) (i32.const 128) (i32.add (i32.const 4) (local.get $bytes))))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
)
