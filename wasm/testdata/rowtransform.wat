;; A row transform: inputs (color: string, amount: number) -> 4 outputs:
;; one-hot of color among "red", "green", "blue", then amount (0 when null).
;; Records follow docs/abi.md: tag 0 null, 1 number (f64), 2 string (u32 length, UTF-8).
;; Error codes: 1 bad n_out, 2 color is a number, 3 amount is a string, 4 record past in_len.
(module
  (memory (export "memory") 1)
  ;; A bump allocator that grows memory: rows may hold long strings.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "mlnode_alloc") (param $size i32) (result i32)
    (local $p i32) (local $end i32) (local $pages i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $size)))
    (if (i32.or (i32.lt_u (local.get $end) (local.get $p))
                (i32.gt_u (local.get $end) (i32.const 0x7fff0000)))
      (then (return (i32.const 0))))
    (local.set $pages (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (data (i32.const 16) "red")
  (data (i32.const 32) "green")
  (data (i32.const 48) "blue")

  ;; streq(p, n, q, m): the n bytes at p equal the m bytes at q.
  (func $streq (param $p i32) (param $n i32) (param $q i32) (param $m i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $n) (local.get $m)) (then (return (i32.const 0))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $q) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.const 1))

  (func (export "mlnode_transform_row") (param $in i32) (param $len i32) (param $out i32) (param $n_out i32) (result i32)
    (local $p i32) (local $end i32) (local $tag i32) (local $n i32)
    (if (i32.ne (local.get $n_out) (i32.const 4)) (then (return (i32.const 1))))
    (local.set $p (local.get $in))
    (local.set $end (i32.add (local.get $in) (local.get $len)))
    (memory.fill (local.get $out) (i32.const 0) (i32.const 32))
    ;; color
    (local.set $tag (i32.load8_u (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (if (i32.eq (local.get $tag) (i32.const 1)) (then (return (i32.const 2))))
    (if (i32.eq (local.get $tag) (i32.const 2))
      (then
        (local.set $n (i32.load (local.get $p)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (if (call $streq (local.get $p) (local.get $n) (i32.const 16) (i32.const 3))
          (then (f64.store (local.get $out) (f64.const 1))))
        (if (call $streq (local.get $p) (local.get $n) (i32.const 32) (i32.const 5))
          (then (f64.store offset=8 (local.get $out) (f64.const 1))))
        (if (call $streq (local.get $p) (local.get $n) (i32.const 48) (i32.const 4))
          (then (f64.store offset=16 (local.get $out) (f64.const 1))))
        (local.set $p (i32.add (local.get $p) (local.get $n)))))
    ;; amount
    (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (i32.const 4))))
    (local.set $tag (i32.load8_u (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (if (i32.eq (local.get $tag) (i32.const 2)) (then (return (i32.const 3))))
    (if (i32.eq (local.get $tag) (i32.const 1))
      (then
        (f64.store offset=24 (local.get $out) (f64.load (local.get $p)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))))
    (if (i32.gt_u (local.get $p) (local.get $end)) (then (return (i32.const 4))))
    (i32.const 0))
)
