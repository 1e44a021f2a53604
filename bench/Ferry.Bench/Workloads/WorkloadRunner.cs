using System.Diagnostics;
using System.Text;
using Ferry.Bench.Harness;
using Ferry.Enclave.Runtime;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Bench.Workloads;

/// <summary>
/// One freeze: the latency GuestProgram measured (request to frozen), and what the guest thread did meanwhile
/// (ran on a CPU, or waited for one), when the thread could be found.
/// </summary>
public sealed record FreezeSample(TimeSpan Latency, SchedTimes? Guest, TimeSpan SinceUnfreeze);

/// <summary>How one in-process run of a workload went.</summary>
/// <param name="CpuMs">Process CPU time during the run (the guest thread, plus any JIT or GC work meanwhile).</param>
public sealed record WorkloadRun(TimeSpan Wall, double CpuMs, GuestEnd End, string Stdout, IReadOnlyList<FreezeSample> Freezes)
{
    /// <summary>The determinism contract's last line, `ops N checksum HEX` (docs/workloads.md).</summary>
    public string ChecksumLine
    {
        get
        {
            var lines = Stdout.TrimEnd('\n').Split('\n');
            return lines[^1];
        }
    }

    public void EnsureExited(string what)
    {
        if (End.Kind != GuestEndKind.Exited || End.ExitCode != 0)
        {
            throw new InvalidOperationException($"{what}: {End.Kind} (exit {End.ExitCode}) {End.Message}");
        }
        if (!ChecksumLine.Contains("checksum", StringComparison.Ordinal)) throw new InvalidOperationException($"{what}: no checksum line in '{Stdout}'");
    }
}

/// <summary>
/// Runs a WASI workload in this process as <see cref="GuestProgram"/> does for `ferry run`: stdout captured (for the
/// checksum), stderr discarded, no preopens. The module is compiled once per variant; each run is a new instance,
/// so its wall time covers the guest's own work (initialisation, operations, exit checksum) and no compilation.
/// </summary>
public static class WorkloadRunner
{
    public static CompiledModule Compile(string path, CompileOptions options) => ModuleCompiler.Compile(ModuleLoader.Load(path), options);

    /// <summary>Runs to the end; with <paramref name="freezeDelays"/>, freezes and unfreezes the guest after each delay.</summary>
    public static WorkloadRun Run(CompiledModule compiled, WorkloadCase workload, IEnumerable<TimeSpan>? freezeDelays = null)
    {
        var stdout = new MemoryStream();
        var environment = WasiEnvironment.Create(new WasiOptions
        {
            Args = [workload.Name + ".wasm", .. workload.Args],
            Stdin = WasiStdio.FromStream(new MemoryStream()),
            Stdout = WasiStdio.FromStream(stdout),
            Stderr = WasiStdio.FromStream(Stream.Null),
        });
        var linker = new Linker();
        environment.Define(linker);
        var instance = Instance.Instantiate(compiled, linker, new InstanceOptions { RunStart = false });
        environment.Bind(instance);
        using var program = new GuestProgram(instance, environment);
        var freezes = new List<FreezeSample>();
        var cpu = CpuClock.ProcessMs();
        var sw = Stopwatch.StartNew();
        program.Start();
        if (freezeDelays is not null)
        {
            var lastUnfreeze = Stopwatch.GetTimestamp();
            foreach (var delay in freezeDelays)
            {
                if (program.Completion.Wait(delay)) break;
                if (!TryFreezeOnce(program, freezes, ref lastUnfreeze)) break;
            }
        }
        var end = program.Completion.GetAwaiter().GetResult();
        sw.Stop();
        cpu = CpuClock.ProcessMs() - cpu;
        instance.Memory?.Dispose();
        return new WorkloadRun(sw.Elapsed, cpu, end, Encoding.UTF8.GetString(stdout.ToArray()), freezes);
    }

    private static bool TryFreezeOnce(GuestProgram program, List<FreezeSample> freezes, ref long lastUnfreeze)
    {
        var sinceUnfreeze = Stopwatch.GetElapsedTime(lastUnfreeze);
        // GuestProgram names its thread "guest"; only one guest runs at a time here.
        var tid = ThreadSchedStat.Find("guest");
        var before = tid is { } t0 ? ThreadSchedStat.Read(t0) : null;
        FrozenGuest frozen;
        try
        {
            frozen = program.FreezeAsync().GetAwaiter().GetResult();
        }
        catch (GuestNotRunningException)
        {
            return false; // it ended between the check and the request
        }
        var after = tid is { } t1 ? ThreadSchedStat.Read(t1) : null;
        freezes.Add(new FreezeSample(frozen.FreezeLatency, before is { } b && after is { } a ? a - b : null, sinceUnfreeze));
        program.Unfreeze();
        lastUnfreeze = Stopwatch.GetTimestamp();
        return true;
    }
}
