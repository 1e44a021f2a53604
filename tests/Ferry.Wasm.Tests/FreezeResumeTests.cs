using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.Tests;

/// <summary>
/// Freezing at safe points and resuming from frame records, triggered deterministically from a host import
/// (no timing): the program calls env.tick(n) as it runs, and the test asks for a freeze at chosen ticks.
/// </summary>
public class FreezeResumeTests
{
    // A program with pending operand-stack values across calls, every value type in locals, loops inside
    // loops, recursion, call_indirect, multi-value blocks and memory writes.
    private const string Program = """
        (module
          (import "env" "tick" (func $tick (param i32)))
          (memory 1)
          (table 2 funcref)
          (elem (i32.const 0) $square $cube)
          (type $un (func (param i64) (result i64)))
          (func $square (type $un) (i64.mul (local.get 0) (local.get 0)))
          (func $cube (type $un) (i64.mul (local.get 0) (i64.mul (local.get 0) (local.get 0))))
          (func $rec (param $n i32) (result i64)
            (call $tick (local.get $n))
            (if (result i64) (i32.eqz (local.get $n))
              (then (i64.const 1))
              (else (i64.add (i64.extend_i32_u (local.get $n)) (call $rec (i32.sub (local.get $n) (i32.const 1)))))))
          (func $pair (param i32) (result i32 f64)
            (local.get 0) (f64.convert_i32_s (local.get 0)))
          (func (export "run") (param $n i32) (result i64)
            (local $i i32) (local $j i32) (local $acc i64) (local $f f32) (local $d f64) (local $v v128)
            (local.set $v (v128.const i32x4 1 2 3 4))
            (block $out
              (loop $outer
                (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $j (i32.const 0))
                (loop $inner
                  (call $tick (i32.add (i32.mul (local.get $i) (i32.const 100)) (local.get $j)))
                  (local.set $acc
                    (i64.add (local.get $acc)
                      (call_indirect (type $un) (i64.extend_i32_u (local.get $j)) (i32.and (local.get $j) (i32.const 1)))))
                  (i32.store (i32.shl (i32.and (local.get $j) (i32.const 255)) (i32.const 2)) (i32.wrap_i64 (local.get $acc)))
                  (local.set $f (f32.add (local.get $f) (f32.const 0.5)))
                  (local.set $v (i32x4.add (local.get $v) (i32x4.splat (local.get $j))))
                  (local.set $j (i32.add (local.get $j) (i32.const 1)))
                  (br_if $inner (i32.lt_u (local.get $j) (i32.const 10))))
                (call $pair (local.get $i))
                (local.set $d (f64.add (local.get $d)))
                (drop)
                (local.set $acc (i64.add (local.get $acc) (call $rec (i32.const 5))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $outer)))
            (i64.add (local.get $acc)
              (i64.add (i64.trunc_f64_s (local.get $d))
                (i64.add (i64.trunc_f32_s (local.get $f))
                  (i64.add (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $v)))
                           (i64.extend_i32_u (i32.load (i32.const 12))))))))
        )
        """;

    private sealed class Ticker
    {
        public Instance? Instance;
        public HashSet<int> FreezeAt = [];
        public int Count;

        /// <summary>Give the call up instead (as a blocking host call does): the frame stops in that call.</summary>
        public bool GiveUp;

        public void Tick(int _)
        {
            if (!FreezeAt.Contains(Count++)) return;
            Instance!.State.RequestFreeze();
            if (GiveUp) Instance.State.UnwindFromHost();
        }
    }

    private static (Instance, Ticker) Create(CompiledModule compiled)
    {
        var ticker = new Ticker();
        var linker = new Linker().DefineFunction("env", "tick", new FuncType([ValueType.I32], []), new Action<int>(ticker.Tick));
        var instance = Instance.Instantiate(compiled, linker);
        ticker.Instance = instance;
        return (instance, ticker);
    }

    /// <summary>
    /// <see cref="Program"/>'s result for run(6) from a reference instance, and another instance frozen at tick 75 of
    /// the same call (deep inside $rec).
    /// </summary>
    private static (WasmValue Expected, Instance Instance, Ticker Ticker, CallOutcome Outcome) FrozenAtTick75(CompiledModule compiled)
    {
        var (reference, _) = Create(compiled);
        var expected = Execution.Call(reference, reference.GetFunction("run"), WasmValue.FromI32(6)).Results![0];
        var (instance, ticker) = Create(compiled);
        ticker.FreezeAt = [75];
        var outcome = Execution.Call(instance, instance.GetFunction("run"), WasmValue.FromI32(6));
        Assert.True(outcome.IsFrozen);
        return (expected, instance, ticker, outcome);
    }

    private static CompiledModule Compile(string wat)
    {
        var module = ModuleDecoder.Decode(Wat.ToWasm(wat));
        ModuleValidator.Validate(module);
        return ModuleCompiler.Compile(module, CompileOptions.Default with { Collectible = true });
    }

    [Fact]
    public void Freezing_at_many_points_and_resuming_gives_the_uninterrupted_result()
    {
        var compiled = Compile(Program);
        var (reference, _) = Create(compiled);
        var expected = Execution.Call(reference, reference.GetFunction("run"), WasmValue.FromI32(20));
        Assert.False(expected.IsFrozen);

        var rng = new Random(7);
        var freezes = Enumerable.Range(0, 12).Select(_ => rng.Next(0, 300)).ToHashSet();
        var (instance, ticker) = Create(compiled);
        ticker.FreezeAt = freezes;
        var outcome = Execution.Call(instance, instance.GetFunction("run"), WasmValue.FromI32(20));
        var frozenCount = 0;
        while (outcome.IsFrozen)
        {
            frozenCount++;
            Assert.All(outcome.Frames!, f => Assert.True(f.FunctionIndex > 0));
            outcome = Execution.Resume(instance, outcome.Frames!);
        }
        Assert.Equal(freezes.Count, frozenCount);
        Assert.Equal(expected.Results![0], outcome.Results![0]);
    }

    [Fact]
    public void Frames_resume_in_a_fresh_instance_given_memory_and_globals()
    {
        var compiled = Compile(Program);
        var (expected, first, ticker, outcome) = FrozenAtTick75(compiled);
        // Deep inside $rec: several frames of the same function, plus the loop frame of "run".
        Assert.True(outcome.Frames!.Count >= 2);

        var (second, ticker2) = Create(compiled);
        ticker2.Count = ticker.Count;
        first.Memory!.Span(0, 65536).CopyTo(second.Memory!.Span(0, 65536));
        var resumed = Execution.Resume(second, outcome.Frames!);
        Assert.False(resumed.IsFrozen);
        Assert.Equal(expected, resumed.Results![0]);
    }

    [Fact]
    public void A_host_call_that_gives_up_for_a_freeze_is_run_again_after_resume()
    {
        var compiled = Compile("""
            (module
              (import "env" "read" (func $read (param i32) (result i32)))
              (func (export "main") (result i32)
                (i32.add (i32.const 1000) (call $read (i32.const 42)))))
            """);
        Instance? instance = null;
        var calls = new List<int>();
        var linker = new Linker().DefineFunction("env", "read", new FuncType([ValueType.I32], [ValueType.I32]), new Func<int, int>(arg =>
        {
            calls.Add(arg);
            if (calls.Count == 1)
            {
                instance!.State.UnwindFromHost(); // e.g. a blocking read interrupted by a freeze
                return -1;
            }
            return arg + 1;
        }));
        instance = Instance.Instantiate(compiled, linker);
        var outcome = Execution.Call(instance, instance.GetFunction("main"));
        Assert.True(outcome.IsFrozen);
        var frame = Assert.Single(outcome.Frames!);
        Assert.Equal([WasmValue.FromI32(1000), WasmValue.FromI32(42)], frame.Stack);
        var resumed = Execution.Resume(instance, outcome.Frames!);
        Assert.Equal(1043, resumed.Results![0].I32);
        Assert.Equal([42, 42], calls);
    }

    [Fact]
    public void Frozen_frames_record_only_live_locals()
    {
        var compiled = Compile("""
            (module
              (import "env" "tick" (func $tick (param i32)))
              (func (export "f") (param $dead i32) (result i32) (local $live i32) (local $later i32)
                (local.set $live (i32.const 5))
                (call $tick (i32.const 0))
                (loop $l
                  (local.set $later (i32.add (local.get $live) (i32.const 1))))
                (local.get $later)))
            """);
        var (instance, ticker) = Create(compiled);
        ticker.FreezeAt = [0];
        var outcome = Execution.Call(instance, instance.GetFunction("f"), WasmValue.FromI32(99));
        var frame = Assert.Single(outcome.Frames!);
        // At the loop header only $live is read later; $dead (the parameter) and $later are dead there.
        Assert.Equal([1], frame.Locals.Select(l => l.Index));
        Assert.Equal(6, Execution.Resume(instance, outcome.Frames!).Results![0].I32);
    }

    [Fact]
    public void Frames_from_another_module_are_refused()
    {
        var compiled = Compile(Program);
        var (instance, _) = Create(compiled);
        var bogus = new FrameRecord(99, 0, [], []);
        Assert.Throws<FrameMismatchException>(() => Execution.Resume(instance, [bogus]));
        var wrongLayout = new FrameRecord(instance.Module.FunctionCount - 1, 1, [new LocalValue(0, WasmValue.FromF64(1))], []);
        Assert.Throws<FrameMismatchException>(() => Execution.Resume(instance, [wrongLayout]));
    }

    [Fact]
    public void A_freeze_requested_before_a_resume_takes_effect_once_the_frames_are_rebuilt()
    {
        var (expected, instance, ticker, outcome) = FrozenAtTick75(Compile(Program));
        var ticks = ticker.Count;
        // Asked while nothing runs: the rebuild must not swallow it, nor save frames while rebuilding.
        instance.State.RequestFreeze();
        var again = Execution.Resume(instance, outcome.Frames!);
        Assert.True(again.IsFrozen);
        // Frozen at the first safe point after the rebuilt one: at most the one host call between them ran.
        Assert.InRange(ticker.Count - ticks, 0, 1);
        var done = Execution.Resume(instance, again.Frames!);
        Assert.False(done.IsFrozen);
        Assert.Equal(expected, done.Results![0]);
    }

    [Fact]
    public void Frames_that_do_not_fit_are_refused_and_the_instance_stays_usable()
    {
        var (expected, instance, _, outcome) = FrozenAtTick75(Compile(Program));
        var frames = outcome.Frames!;
        var outer = frames[^1];
        Assert.NotEmpty(outer.Locals);

        // A live local missing: refused up front (the rebuilder would otherwise read it as zero).
        var missing = new FrameRecord(outer.FunctionIndex, outer.SafePoint, outer.Locals[1..], outer.Stack);
        Assert.Throws<FrameMismatchException>(() => Execution.Resume(instance, [.. frames.Take(frames.Count - 1), missing]));
        // Frames in the wrong order (each one fits its own function): refused while rebuilding, by the callee.
        var reordered = frames.Reverse().ToArray();
        Assert.Throws<FrameMismatchException>(() => Execution.Resume(instance, reordered));

        // Nothing of the failed attempts is left behind: the real frames still resume to the right result.
        var done = Execution.Resume(instance, frames);
        Assert.False(done.IsFrozen);
        Assert.Equal(expected, done.Results![0]);
    }

    [Fact]
    public void A_function_too_large_for_one_resume_version_gets_one_per_safe_point_and_resumes_correctly()
    {
        // 800 host calls in one loop body: ordinary IL well over ResumeCompiler.LargeFunctionIl.
        var calls = string.Concat(Enumerable.Range(0, 800).Select(k => $"(call $tick (i32.const {k})) (local.set $acc (i32.add (local.get $acc) (i32.const {k})))\n"));
        var wat = $$"""
            (module
              (import "env" "tick" (func $tick (param i32)))
              (func (export "run") (param $n i32) (result i32)
                (local $acc i32) (local $i i32)
                (loop $again
                  {{calls}}
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $again (i32.lt_u (local.get $i) (local.get $n))))
                (local.get $acc)))
            """;
        var compiled = Compile(wat);
        var (reference, _) = Create(compiled);
        var expected = Execution.Call(reference, reference.GetFunction("run"), WasmValue.FromI32(3)).Results![0];

        var (instance, ticker) = Create(compiled);
        ticker.FreezeAt = [100, 900, 1700];
        ticker.GiveUp = true; // each freeze stops in another call: another safe point
        var outcome = Execution.Call(instance, instance.GetFunction("run"), WasmValue.FromI32(3));
        var compiledVersions = new List<int>();
        while (outcome.IsFrozen)
        {
            compiledVersions.Add(Execution.PrepareResume(instance, outcome.Frames!));
            outcome = Execution.Resume(instance, outcome.Frames!);
        }
        Assert.Equal(expected, outcome.Results![0]);
        // Each freeze stopped at another safe point of the one function: each needed its own resume version (a
        // small function's single version would have served all three).
        Assert.Equal([1, 1, 1], compiledVersions);
    }
}
