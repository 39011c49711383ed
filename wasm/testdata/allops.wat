;; Not an mlnode module: the instrumenter's test bed. `run` exercises every
;; kind of instruction immediate of WebAssembly 2.0 (block types, br_table,
;; typed select, call_indirect, constants, memargs, 0xFC bulk memory, table
;; and saturating ops, reference types, 0xFD SIMD with lanes, shuffles and
;; memargs) inside nested loops, and returns a checksum: the test compares it
;; before and after instrumentation. It has 4 loops.
(module
  (type $pair (func (param i32) (result i32 i32)))
  (type $un (func (param i64) (result i64)))
  (memory (export "memory") 1 2)
  (table $t 4 8 funcref)
  (table $ext 2 externref)
  (elem $e func $sq $inc)
  (elem (table $t) (i32.const 0) func $sq $inc)
  (data $d "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
  (data (i32.const 64) "\ff\fe\fd\fc")
  (global $acc (mut i64) (i64.const -9223372036854775807))

  (func $sq (type $un) (i64.mul (local.get 0) (local.get 0)))
  (func $inc (type $un) (i64.add (local.get 0) (i64.const 1)))
  (func $split (type $pair) (local.get 0) (i32.shr_u (local.get 0) (i32.const 1)))

  (func $mix (param $x i64)
    (global.set $acc (i64.add (i64.rotl (global.get $acc) (i64.const 7)) (local.get $x))))

  (func (export "run") (result i64)
    (local $i i32) (local $j i32) (local $f f32) (local $d f64) (local $v v128) (local $r funcref)
    ;; nested loops with a br_table and typed blocks
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner (result i32)
        (block $b2 (block $b1 (block $b0
          (br_table $b0 $b1 $b2 (i32.rem_u (local.get $j) (i32.const 3))))
          (call $mix (i64.extend_i32_u (local.get $j))) (br $b2))
          (call $mix (call_indirect $t (type $un) (i64.extend_i32_s (local.get $j)) (i32.const 0))) (br $b2))
        (call $mix (call_indirect $t (type $un) (i64.const 41) (i32.const 1)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (local.get $j)
        (br_if $inner (i32.lt_u (local.get $j) (i32.const 7))))
      (drop)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (i32.const 5))))
    ;; multi-value block type and typed select
    (call $split (i32.const 1000))
    (i32.add)
    (block (type $pair) (param i32) (result i32 i32) (i32.const 3))
    (i32.mul)
    (call $mix (i64.extend_i32_u))
    (call $mix (select (result i64) (i64.const 0x7fffffffffffffff) (i64.const -1) (i32.const 0)))
    (call $mix (i64.extend_i32_u (select (i32.const 5) (i32.const 6) (i32.const 1))))
    ;; if/else with a result
    (call $mix (if (result i64) (i32.eqz (local.get $i)) (then (i64.const 1)) (else (i64.const 2))))
    ;; constants and conversions
    (local.set $f (f32.const -1.5e10))
    (local.set $d (f64.const 0x1.fffffffffffffp+1023))
    (call $mix (i64.trunc_sat_f32_s (local.get $f)))
    (call $mix (i64.trunc_sat_f64_u (local.get $d)))
    (call $mix (i64.extend_i32_s (i32.trunc_sat_f64_s (f64.const -1e300))))
    (call $mix (i64.reinterpret_f64 (f64.promote_f32 (local.get $f))))
    (call $mix (i64.extend8_s (i64.const 0x80)))
    ;; loads and stores with offsets and alignment
    (i64.store offset=128 align=4 (i32.const 8) (global.get $acc))
    (call $mix (i64.load32_u offset=132 (i32.const 8)))
    (call $mix (i64.extend_i32_s (i32.load16_s offset=1 (i32.const 64))))
    (call $mix (i64.extend_i32_u (memory.size)))
    (call $mix (i64.extend_i32_s (memory.grow (i32.const 1))))
    ;; bulk memory
    (memory.init $d (i32.const 256) (i32.const 2) (i32.const 10))
    (data.drop $d)
    (memory.copy (i32.const 512) (i32.const 256) (i32.const 10))
    (memory.fill (i32.const 520) (i32.const 0xaa) (i32.const 4))
    (call $mix (i64.load (i32.const 512)))
    (call $mix (i64.load (i32.const 516)))
    ;; tables and references
    (table.init $t $e (i32.const 2) (i32.const 0) (i32.const 2))
    (elem.drop $e)
    (table.copy $t $t (i32.const 0) (i32.const 2) (i32.const 2))
    (call $mix (i64.extend_i32_s (table.grow $t (ref.null func) (i32.const 1))))
    (call $mix (i64.extend_i32_u (table.size $t)))
    (table.fill $t (i32.const 4) (ref.func $sq) (i32.const 1))
    (local.set $r (table.get $t (i32.const 4)))
    (table.set $t (i32.const 3) (local.get $r))
    (call $mix (i64.extend_i32_u (ref.is_null (local.get $r))))
    (call $mix (i64.extend_i32_u (ref.is_null (table.get $ext (i32.const 0)))))
    (call $mix (call_indirect $t (type $un) (i64.const 9) (i32.const 3)))
    ;; SIMD
    (local.set $v (v128.const i32x4 1 2 3 4))
    (local.set $v (i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0 (local.get $v) (local.get $v)))
    (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32.const 77)))
    (call $mix (i64.extend_i32_s (i8x16.extract_lane_s 3 (local.get $v))))
    (call $mix (i64x2.extract_lane 1 (local.get $v)))
    (v128.store offset=16 (i32.const 1024) (local.get $v))
    (local.set $v (v128.load32_zero (i32.const 1028)))
    (local.set $v (v128.load8_lane 5 (i32.const 64) (local.get $v)))
    (v128.store32_lane 0 (i32.const 2048) (local.get $v))
    (call $mix (i64.load (i32.const 2048)))
    (local.set $v (i32x4.add (local.get $v) (i32x4.splat (i32.const 3))))
    (local.set $v (f64x2.mul (v128.load offset=16 (i32.const 1024)) (f64x2.splat (f64.const 1.5))))
    (call $mix (i64.trunc_sat_f64_s (f64x2.extract_lane 0 (local.get $v))))
    (call $mix (i64.extend_i32_u (i32x4.all_true (local.get $v))))
    (call $mix (i64.extend_i32_u (v128.any_true (i32x4.trunc_sat_f64x2_s_zero (local.get $v)))))
    ;; a loop that is never entered twice, and one in a called block
    (loop $once (call $mix (i64.const 3)))
    (block $out (loop $l (br $out)))
    (global.get $acc))
)
