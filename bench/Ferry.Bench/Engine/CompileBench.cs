using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using Ferry.Bench.Harness;
using Ferry.Wasm;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Validation;

namespace Ferry.Bench.Engine;

/// <summary>
/// Compile time per MB of module: Ferry's decode, validate and IL emission separately, then the JIT of every
/// function (what their first calls would cost), against V8's `new WebAssembly.Module` on the same bytes, measured
/// in the same run in three V8 configurations.
/// </summary>
public static class CompileBench
{
    private const double MB = 1e6;

    /// <summary>Best-of-N phase times of one module.</summary>
    private sealed class Phases
    {
        public Samples Decode { get; } = new();
        public Samples Validate { get; } = new();
        public Samples Emit { get; } = new();
        public Samples JitTier0 { get; } = new();
        public Samples JitOptimized { get; } = new();
        public int Functions { get; set; }
    }

    public static void Run(Report report, IReadOnlyList<(string Name, string Path)> modules, int reps)
    {
        var files = new List<string>();
        foreach (var (_, path) in modules) files.Add(path);
        Report.Progress("node: new WebAssembly.Module, three V8 configurations");
        var lazy = NodeBaseline.Compile(files, reps);
        var liftoff = NodeBaseline.Compile(files, reps, "--no-wasm-lazy-compilation");
        var turbofan = NodeBaseline.Compile(files, reps, "--no-wasm-lazy-compilation", "--no-liftoff");

        var ferry = new ResultTable($"Ferry compile phases (best of {reps})",
            ["module", "MB", "code MB", "functions", "decode ms", "validate ms", "IL emit ms", "MB/s (module)", "MB/s (code)", "JIT all, tiered ms", "JIT all, full opt ms"]);
        var versus = new ResultTable($"Ferry vs node 20 (V8) on the same bytes, best of {reps} each",
            ["module", "Ferry decode+validate ms", "V8 default (lazy) ms", "ratio", "Ferry +emit+JIT tiered ms", "V8 eager Liftoff ms", "ratio", "Ferry +emit+JIT full opt ms", "V8 eager TurboFan ms", "ratio"]);
        foreach (var (name, path) in modules)
        {
            Report.Progress($"Ferry compile: {name}");
            var bytes = File.ReadAllBytes(path);
            var p = Measure(bytes, reps);
            var codeBytes = WasmSections.CodeBytes(bytes);
            var load = p.Decode.Min + p.Validate.Min;
            var toIl = load + p.Emit.Min;
            ferry.Row(name, Cell.Num(bytes.Length / MB, "F2"), Cell.Num(codeBytes / MB, "F3"), Cell.Num(p.Functions, "F0"),
                Cell.Num(p.Decode.Min, "F1"), Cell.Num(p.Validate.Min, "F1"), Cell.Num(p.Emit.Min, "F1"),
                Cell.Num(bytes.Length / MB / (toIl / 1000), "F1"), Cell.Num(codeBytes / MB / (toIl / 1000), "F2"),
                Cell.Num(p.JitTier0.Min, "F1"), Cell.Num(p.JitOptimized.Min, "F1"));
            var v8Lazy = lazy[path].Min;
            var v8Liftoff = liftoff[path].Min;
            var v8Turbo = turbofan[path].Min;
            versus.Row(name, Cell.Num(load, "F1"), Cell.Num(v8Lazy, "F1"), Cell.Num(load / v8Lazy, "F2"),
                Cell.Num(toIl + p.JitTier0.Min, "F1"), Cell.Num(v8Liftoff, "F1"), Cell.Num((toIl + p.JitTier0.Min) / v8Liftoff, "F1"),
                Cell.Num(toIl + p.JitOptimized.Min, "F1"), Cell.Num(v8Turbo, "F1"), Cell.Num((toIl + p.JitOptimized.Min) / v8Turbo, "F1"));
        }
        ferry.Note("MB/s = module (or code-section) bytes / (decode + validate + IL emit); MB = 10^6 bytes.");
        ferry.Note("JIT all: RuntimeHelpers.PrepareMethod on every function's method right after emission, i.e. what the first call of");
        ferry.Note("every function costs. 'tiered' = CompileOptions.Default (RyuJIT tier 0; hot methods are recompiled later, in the");
        ferry.Note("background, and that is not counted); 'full opt' = AggressiveOptimization (what a first call costs with it).");
        versus.Note("V8 default: node 20 compiles lazily, so new WebAssembly.Module only decodes and validates; each function is");
        versus.Note("compiled by Liftoff on its first call and hot ones by TurboFan in the background. The eager rows force");
        versus.Note("compilation of every function up front (--no-wasm-lazy-compilation, and --no-liftoff for TurboFan); V8 compiles");
        versus.Note("on background threads in parallel (2 cores here), Ferry on one thread. ratio = Ferry / V8.");
        report.Add(ferry);
        report.Add(versus);
    }

    private static Phases Measure(byte[] bytes, int reps)
    {
        var p = new Phases();
        var sw = new Stopwatch();
        // One unmeasured pass first: Ferry's own decoder, validator and compiler are JIT-compiled on first use too.
        ModuleCompiler.Compile(DecodeAndValidate(bytes), CompileOptions.Default);
        for (var r = 0; r < reps; r++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            sw.Restart();
            var module = ModuleDecoder.Decode(bytes);
            p.Decode.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            ModuleValidator.Validate(module);
            p.Validate.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            var compiled = ModuleCompiler.Compile(module, CompileOptions.Default);
            p.Emit.Add(sw.Elapsed.TotalMilliseconds);
            p.JitTier0.Add(JitAll(compiled, out var functions));
            p.Functions = functions;
            // The same IL with the AggressiveOptimization flag: only the JIT differs, so only the JIT is timed.
            var optimized = ModuleCompiler.Compile(module, CompileOptions.Default with { AggressiveOptimization = true });
            p.JitOptimized.Add(JitAll(optimized, out _));
        }
        return p;
    }

    private static Wasm.Module DecodeAndValidate(byte[] bytes)
    {
        var module = ModuleDecoder.Decode(bytes);
        ModuleValidator.Validate(module);
        return module;
    }

    /// <summary>JIT-compiles every function of the module (not the resume versions, which are made on demand); ms.</summary>
    private static double JitAll(CompiledModule compiled, out int functions)
    {
        var methods = compiled.InstanceType.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly);
        var sw = Stopwatch.StartNew();
        foreach (var m in methods) RuntimeHelpers.PrepareMethod(m.MethodHandle);
        functions = methods.Length;
        return sw.Elapsed.TotalMilliseconds;
    }
}
