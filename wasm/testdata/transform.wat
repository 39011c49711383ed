;; A numeric transform: 2 inputs (x0, x1) -> 3 outputs:
;; x0*x1, sqrt(|x0|), and the bucket of x1 among the bounds 0, 10, 100 (0..3).
(module
  (memory (export "memory") 1)
  ;; A bump allocator without growth: enough for small buffers.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "mlnode_alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (func (export "mlnode_transform") (param $in i32) (param $n_in i32) (param $out i32) (param $n_out i32) (result i32)
    (local $x0 f64) (local $x1 f64)
    (if (i32.ne (local.get $n_in) (i32.const 2)) (then (return (i32.const 1))))
    (if (i32.ne (local.get $n_out) (i32.const 3)) (then (return (i32.const 2))))
    (local.set $x0 (f64.load (local.get $in)))
    (local.set $x1 (f64.load offset=8 (local.get $in)))
    (f64.store (local.get $out) (f64.mul (local.get $x0) (local.get $x1)))
    (f64.store offset=8 (local.get $out) (f64.sqrt (f64.abs (local.get $x0))))
    (f64.store offset=16 (local.get $out)
      (f64.convert_i32_u (i32.add (i32.add
        (f64.ge (local.get $x1) (f64.const 0))
        (f64.ge (local.get $x1) (f64.const 10)))
        (f64.ge (local.get $x1) (f64.const 100)))))
    (i32.const 0))
)
