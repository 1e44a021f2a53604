using System.Diagnostics;
using Ferry.Bench.Harness;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// bench/checkpoint/churn.wat compiled once: a 1 GiB memory filled with incompressible data up to a chosen size
/// (the rest stays zero) and a loop that keeps rewriting it, which the snapshot benchmark freezes.
/// </summary>
public sealed class ChurnModule
{
    public const long MemoryBytes = 1L << 30;

    public ChurnModule() => Compiled = ModuleCompiler.Compile(ModuleLoader.Load(BenchModules.Wat("checkpoint", "churn.wat")), CompileOptions.Default);

    public CompiledModule Compiled { get; }

    /// <summary>A new instance with [0, <paramref name="filled"/>) filled (the call completes; nothing frozen).</summary>
    public Instance Filled(long filled)
    {
        var instance = Instance.Instantiate(Compiled);
        WasmThread.Run(() => instance.Invoke("fill", WasmValue.FromI32(checked((int)filled))));
        return instance;
    }

    /// <summary>The churn loop run to its end, uninterrupted: its result and how long it took.</summary>
    public (long Hash, TimeSpan Elapsed) Reference(long filled, int iterations)
    {
        var instance = Filled(filled);
        try
        {
            var sw = Stopwatch.StartNew();
            var r = WasmThread.Run(() => instance.Invoke("churn", WasmValue.FromI32(checked((int)filled)), WasmValue.FromI32(iterations)));
            return (r[0].I64, sw.Elapsed);
        }
        finally
        {
            instance.Memory!.Dispose();
        }
    }

    /// <summary>
    /// Starts the churn loop on a big-stack thread, requests a freeze after <paramref name="after"/>, and returns the
    /// frozen frames with the time from the request to the call's return (the freeze latency).
    /// </summary>
    public (IReadOnlyList<FrameRecord> Frames, TimeSpan Latency) RunAndFreeze(Instance instance, long filled, int iterations, TimeSpan after)
    {
        CallOutcome? outcome = null;
        Exception? error = null;
        var churn = instance.GetFunction("churn");
        long requested = 0, returned = 0;
        var thread = new Thread(() =>
        {
            try
            {
                outcome = Execution.Call(instance, churn, WasmValue.FromI32(checked((int)filled)), WasmValue.FromI32(iterations));
                returned = Stopwatch.GetTimestamp();
            }
            catch (Exception e)
            {
                error = e;
            }
        }, WasmThread.StackBytes)
        { Name = "churn" };
        thread.Start();
        Thread.Sleep(after);
        requested = Stopwatch.GetTimestamp();
        instance.State.RequestFreeze();
        thread.Join();
        if (error is not null) throw new InvalidOperationException("churn failed", error);
        if (outcome is not { IsFrozen: true }) throw new InvalidOperationException("churn ended before the freeze request; make it longer");
        return (outcome.Frames!, Stopwatch.GetElapsedTime(requested, returned));
    }

    /// <summary>Continues frozen frames to the end of the churn loop; returns its result.</summary>
    public static long Resume(Instance instance, IReadOnlyList<FrameRecord> frames)
    {
        var outcome = WasmThread.Run(() => Execution.Resume(instance, frames));
        if (outcome.IsFrozen) throw new InvalidOperationException("froze again unexpectedly");
        return outcome.Results![0].I64;
    }
}
