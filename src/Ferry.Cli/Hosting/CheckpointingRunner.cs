using System.Runtime.InteropServices;
using Ferry.Enclave.Runtime;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Cli.Hosting;

/// <summary>
/// Runs a guest program to its end, or until a checkpoint is requested (after a delay, or on SIGUSR1): then it
/// freezes the guest at a safe point, writes the snapshot atomically, and ends the process with exit code 0.
/// </summary>
public static class CheckpointingRunner
{
    private const int SigUsr1 = 10;

    public static int Run(GuestProgram program, string? snapshotPath, TimeSpan? checkpointAfter, string moduleName, Action startGuest)
    {
        using var checkpoint = new CancellationTokenSource();
        using var signal = snapshotPath is null ? null : PosixSignalRegistration.Create((PosixSignal)SigUsr1, ctx =>
        {
            ctx.Cancel = true;
            checkpoint.Cancel();
        });
        if (snapshotPath is not null && checkpointAfter is { } delay) checkpoint.CancelAfter(delay);

        var started = System.Diagnostics.Stopwatch.StartNew();
        startGuest();
        var ended = program.Completion;
        if (snapshotPath is not null)
        {
            var requested = Task.Delay(Timeout.Infinite, checkpoint.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            if (Task.WaitAny(ended, requested) == 1 && !ended.IsCompleted)
            {
                try
                {
                    var frozen = program.FreezeAsync().GetAwaiter().GetResult();
                    var stats = Write(program, frozen, snapshotPath, moduleName);
                    program.Retire();
                    Console.Out.Flush();
                    Console.Error.WriteLine($"ferry: snapshot: {stats.Frames} frames, {stats.MemoryBytes >> 20} MiB memory ({stats.StoredPages} pages stored, {stats.ZeroPages} zero), {stats.Bytes >> 10} KiB, {stats.Elapsed.TotalMilliseconds:0} ms");
                    Console.WriteLine($"checkpointed {snapshotPath}");
                    ReportGuestTime(started);
                    return ExitCodes.Ok;
                }
                catch (GuestNotRunningException)
                {
                    // The program ended while the freeze was requested: report its own ending below.
                }
            }
        }
        var end = ended.GetAwaiter().GetResult();
        ReportGuestTime(started);
        return Report(program, end);
    }

    /// <summary>FERRY_TIMING=1: how long the guest ran in this process (tests size checkpoint delays with it).</summary>
    private static void ReportGuestTime(System.Diagnostics.Stopwatch started)
    {
        if (Environment.GetEnvironmentVariable("FERRY_TIMING") == "1")
        {
            Console.Error.WriteLine($"ferry: guest ran {started.Elapsed.TotalMilliseconds:0} ms");
        }
    }

    private static SnapshotStats Write(GuestProgram program, FrozenGuest frozen, string path, string moduleName)
    {
        var full = Path.GetFullPath(path);
        var temp = full + ".tmp-" + Environment.ProcessId;
        SnapshotStats stats;
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var metadata = new Dictionary<string, string>
            {
                ["created"] = DateTime.UtcNow.ToString("O"),
                ["host"] = Environment.MachineName,
                ["ferry"] = CommandCatalog.Version,
                ["freeze_latency_ms"] = frozen.FreezeLatency.TotalMilliseconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture),
                // Informational only: nothing in the snapshot depends on the CPU that wrote it.
                ["cpu"] = HostCpu.Describe(),
            };
            stats = SnapshotWriter.Write(file, program.Instance, frozen.Frames, program.Environment.CaptureState(), metadata, moduleName, includeModule: true);
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, full, overwrite: true);
        return stats;
    }

    /// <summary>Prints how the program ended (traps with a backtrace) and returns the process exit code.</summary>
    public static int Report(GuestProgram program, GuestEnd end)
    {
        switch (end.Kind)
        {
            case GuestEndKind.Trapped:
                Console.Error.WriteLine($"ferry: wasm trap: {end.Message}");
                if (end.Backtrace is { Count: > 0 } bt)
                {
                    Console.Error.WriteLine("wasm backtrace:");
                    foreach (var f in bt) Console.Error.WriteLine($"  {f}");
                }
                return end.ExitCode;
            case GuestEndKind.Failed:
                Console.Error.WriteLine($"ferry: runtime error: {end.Message}");
                return ExitCodes.Failure;
            default:
                _ = program;
                return end.ExitCode;
        }
    }
}
