;; Bad: mlnode_predict takes three parameters instead of four.
(module
  (memory (export "memory") 1)
  ;; A bump allocator without growth: enough for small buffers.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "mlnode_alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (func (export "mlnode_predict") (param i32 i32 i32) (result i32) (i32.const 0))
)
