;; A module with a start function (which the host runs under its watchdog):
;; mlnode_predict writes the value the start function set.
(module
  (memory (export "memory") 1)
  ;; A bump allocator without growth: enough for small buffers.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "mlnode_alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (global $v (mut f64) (f64.const 0))
  (func $start (global.set $v (f64.const 42)))
  (start $start)
  (func (export "mlnode_predict") (param $in i32) (param $n_in i32) (param $out i32) (param $n_out i32) (result i32)
    (f64.store (local.get $out) (global.get $v))
    (i32.const 0))
)
