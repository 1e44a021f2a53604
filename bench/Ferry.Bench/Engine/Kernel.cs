using System.Diagnostics;
using System.Globalization;
using Ferry.Bench.Harness;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Bench.Engine;

/// <summary>An export of kernels.wasm and the argument that makes one call take ~0.5–2 s here.</summary>
public sealed record Kernel(string Function, string Kind, long Argument)
{
    public static IReadOnlyList<Kernel> All(bool quick)
    {
        var scale = quick ? 10 : 1;
        return
        [
            new("int_hash", "integer: 64-bit mixing hash + FNV-1a", 300_000_000 / scale),
            new("nbody", "floating point: 5-body n-body steps", 10_000_000 / scale),
            new("mem_sort", "memory: fill, quicksort, strided walk of n u32", 8_000_000 / scale),
        ];
    }

    public string Call => $"{Function}({Argument.ToString(CultureInfo.InvariantCulture)})";
}

/// <summary>kernels.wasm instantiated in this process under one set of compile options.</summary>
public sealed class KernelInstance
{
    private readonly Instance instance;

    public KernelInstance(string path, CompileOptions options)
    {
        var module = ModuleDecoder.Decode(File.ReadAllBytes(path));
        ModuleValidator.Validate(module);
        instance = Instance.Instantiate(ModuleCompiler.Compile(module, options));
    }

    /// <summary>
    /// Calls the kernel once on a big-stack thread; returns its result (decimal, as JS prints it), wall ms and process
    /// CPU ms (process, like node's process.cpuUsage, so background JIT work counts on both sides).
    /// </summary>
    public (string Result, double WallMs, double CpuMs) Call(Kernel kernel)
    {
        var f = instance.GetFunction(kernel.Function);
        var arg = WasmValue.FromI32(checked((int)kernel.Argument));
        return WasmThread.Run(() =>
        {
            var cpu = CpuClock.ProcessMs();
            var sw = Stopwatch.StartNew();
            var r = Instance.Invoke(f, arg);
            var ms = sw.Elapsed.TotalMilliseconds;
            cpu = CpuClock.ProcessMs() - cpu;
            var text = r[0].Type == Wasm.ValueType.I64
                ? r[0].I64.ToString(CultureInfo.InvariantCulture)
                : r[0].I32.ToString(CultureInfo.InvariantCulture);
            return (text, ms, cpu);
        });
    }
}
