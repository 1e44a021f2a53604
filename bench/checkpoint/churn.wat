;; The instance `dotnet run -c Release --project bench/Ferry.Bench -- checkpoint` snapshots: 1 GiB of linear memory
;; (min = max = 16384 pages), filled with xorshift64 output (incompressible, no zero pages) up to a chosen size,
;; then rewritten at pseudo-random words in a loop that a freeze can stop at any iteration. The generator's state
;; is a mutable global, so it travels in the snapshot too. Assembled with wabt's wat2wasm by the bench.
(module
  (memory (export "memory") 16384 16384)
  (global $x (mut i64) (i64.const 0x9E3779B97F4A7C15))

  ;; xorshift64 step on the global state.
  (func $next (result i64)
    (local $x i64)
    (local.set $x (global.get $x))
    (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 13))))
    (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 7))))
    (local.set $x (i64.xor (local.get $x) (i64.shl (local.get $x) (i64.const 17))))
    (global.set $x (local.get $x))
    (local.get $x))

  ;; Writes generator output to every 8-byte word of [0, filled).
  (func (export "fill") (param $filled i32)
    (local $a i32)
    (block $done
      (loop $words
        (br_if $done (i32.ge_u (local.get $a) (local.get $filled)))
        (i64.store (local.get $a) (call $next))
        (local.set $a (i32.add (local.get $a) (i32.const 8)))
        (br $words))))

  ;; $iterations read-modify-writes of random words in [0, filled) (a power of two), each folded into a hash;
  ;; then a hash of every word of [0, filled), so the result covers all of the memory that was filled.
  (func (export "churn") (param $filled i32) (param $iterations i32) (result i64)
    (local $i i32) (local $a i32) (local $v i64) (local $h i64)
    (local.set $h (i64.const 0xCBF29CE484222325))
    (block $done
      (loop $steps
        (br_if $done (i32.ge_u (local.get $i) (local.get $iterations)))
        (local.set $v (call $next))
        (local.set $a (i32.and (i32.wrap_i64 (local.get $v)) (i32.sub (local.get $filled) (i32.const 8))))
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $a))) (i64.const 0x100000001B3)))
        (i64.store (local.get $a) (i64.xor (i64.load (local.get $a)) (local.get $v)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $steps)))
    (local.set $a (i32.const 0))
    (block $end
      (loop $words
        (br_if $end (i32.ge_u (local.get $a) (local.get $filled)))
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $a))) (i64.const 0x100000001B3)))
        (local.set $a (i32.add (local.get $a) (i32.const 8)))
        (br $words)))
    (local.get $h)))
