;; One module, many faults: mlnode_predict picks one by the integer value of
;; its first input. The good mode (0) shows that the node keeps serving the
;; same module after each fault.
;;   0 ok: out[0] = 42        5 memory.grow until it fails, then trap
;;   1 loop forever           6 out-of-bounds store
;;   2 loop calling a func    7 unreachable
;;   3 infinite recursion     8 return code 9
;;   4 fib(60), no loops      9 proc_exit(3)
;;  10 fd_write then ok      11 fd_write forever      12 integer divide by zero
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "mlnode_alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))

  ;; iovec {ptr 512, len 16} at 256; the bytes at 512.
  (data (i32.const 256) "\00\02\00\00\10\00\00\00")
  (data (i32.const 512) "hello from wasm\n")

  (global $sink (mut i32) (i32.const 0))
  (func $noop (global.set $sink (i32.add (global.get $sink) (i32.const 1))))
  (func $rec (param $n i32) (result i32)
    (i32.add (call $rec (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))
  (func $hello (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 300))))

  (func (export "mlnode_predict") (param $in i32) (param $n_in i32) (param $out i32) (param $n_out i32) (result i32)
    (local $mode i32)
    (local.set $mode (i32.trunc_f64_s (f64.load (local.get $in))))
    (block $ok
      (block $m12 (block $m11 (block $m10 (block $m9 (block $m8 (block $m7 (block $m6
      (block $m5 (block $m4 (block $m3 (block $m2 (block $m1
        (br_table $ok $m1 $m2 $m3 $m4 $m5 $m6 $m7 $m8 $m9 $m10 $m11 $m12 $ok (local.get $mode)))
        ;; 1
        (loop $forever (br $forever)))
        ;; 2
        (loop $forever (call $noop) (br $forever)))
        ;; 3
        (global.set $sink (call $rec (i32.const 0))) (br $ok))
        ;; 4
        (global.set $sink (i32.wrap_i64 (call $fib (i64.const 60)))) (br $ok))
        ;; 5
        (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (unreachable))
        ;; 6
        (i32.store (i32.const 0xfffffff0) (i32.const 1)) (br $ok))
        ;; 7
        (unreachable))
        ;; 8
        (return (i32.const 9)))
        ;; 9
        (call $proc_exit (i32.const 3)) (br $ok))
        ;; 10
        (call $hello) (br $ok))
        ;; 11
        (loop $forever (call $hello) (br $forever)))
        ;; 12
        (global.set $sink (i32.div_s (i32.const 1) (global.get $sink))) (br $ok))
    (f64.store (local.get $out) (f64.const 42))
    (i32.const 0))
)
