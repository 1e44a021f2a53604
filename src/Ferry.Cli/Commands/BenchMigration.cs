using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ferry.Agent.Api;
using Ferry.Agent.Client;
using Ferry.Enclave.Runtime;
using Ferry.Migration;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Commands;

/// <summary>One migration of the benchmark grid.</summary>
public sealed record MigrationSample
{
    public required string Workload { get; init; }
    public required string[] Flags { get; init; }
    public required string Size { get; init; }
    public required ulong SizeBytes { get; init; }
    public required string Strategy { get; init; }
    public required string Tracking { get; init; }
    public required string From { get; init; }
    public required string To { get; init; }
    public required bool Ok { get; init; }
    public string? Error { get; init; }
    /// <summary>The machine's 1-minute load average when the migration started (this machine is shared).</summary>
    public double Load { get; init; }
    public MigrationReport? Report { get; init; }
}

/// <summary>Run-time cost of compiled write tracking on one program.</summary>
/// <remarks>Seconds are CPU time of the process (this machine is shared: wall time swings with other load); wall-clock medians are kept alongside.</remarks>
public sealed record OverheadSample(string Workload, string[] Args, double PlainSeconds, double TrackedSeconds, double PlainWallSeconds = 0, double TrackedWallSeconds = 0, string? Error = null)
{
    public double TrackingOverhead => TrackedSeconds / PlainSeconds - 1;
    public double WallOverhead => PlainWallSeconds > 0 ? TrackedWallSeconds / PlainWallSeconds - 1 : 0;
}

public sealed record BenchResults(string Machine, string Command, DateTimeOffset Date, List<MigrationSample> Migrations, List<OverheadSample> Overhead);

[JsonSerializable(typeof(BenchResults))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class BenchJson : JsonSerializerContext;

/// <summary>
/// `ferry bench migration`: for each workload and size, one long-running instance migrated back and forth
/// between two local agents with every strategy × tracking method (each migration a real one, through the
/// destination agent); then the cost of compiled tracking on the whole suite. Writes
/// docs/benchmarks-migration.md, docs/migration-downtime.svg and summary rows in docs/benchmarks.md.
/// </summary>
public static class BenchMigration
{
    public sealed record Options
    {
        public required string Sizes { get; init; }
        public required string Workloads { get; init; }
        public required string Strategies { get; init; }
        public required string Tracking { get; init; }
        public bool Overhead { get; init; }
        /// <summary>Skip the migration grid (keep the last run's, from benchmarks-migration.json).</summary>
        public bool OverheadOnly { get; init; }
        public string? Docs { get; init; }
        public bool Json { get; init; }
        public required string CommandLine { get; init; }
    }

    /// <summary>Flags each program runs with (microbench: the paper's microbenchmark at a low write rate).</summary>
    internal static string[] FlagsFor(string workload) => workload == "microbench" ? ["--rate", "1000"] : [];

    private static void Say(string text) => Console.Error.WriteLine($"[bench] {text}");

    /// <summary>" (collect a + final pages b + state c + ready d + commit e)", or nothing.</summary>
    private static string Parts(DowntimeBreakdown? p) => p is null ? "" : string.Create(CultureInfo.InvariantCulture,
        $" (collect {p.CollectMs:0.0} + final pages {p.FinalPagesMs:0.0} + state {p.StateMs:0.0} + ready {p.ReadyMs:0.0} + commit {p.CommitMs:0.0})");

    public static async Task<int> RunAsync(Options o, CancellationToken ct)
    {
        var repo = LocalAgents.RepoRoot();
        if (repo is null)
        {
            Console.Error.WriteLine("ferry bench: needs the Ferry repository (workloads/, docs/)");
            return ExitCodes.Failure;
        }
        var sizes = o.Sizes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var s in sizes)
        {
            if (!SizeParser.TryParse(s, out _))
            {
                Console.Error.WriteLine($"ferry bench: --sizes: not a size: '{s}'");
                return ExitCodes.Usage;
            }
        }
        var workloads = o.Workloads.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var strategies = o.Strategies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var trackings = o.Tracking.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (strategies.Any(s => !MigrationNames.TryParseStrategy(s, out _)) || trackings.Any(t => !MigrationNames.TryParseTracking(t, out _)))
        {
            Console.Error.WriteLine($"ferry bench: strategies are {string.Join(", ", MigrationNames.Strategies)}; tracking methods {string.Join(", ", MigrationNames.TrackingMethods)}");
            return ExitCodes.Usage;
        }
        var docs = o.Docs ?? Path.Combine(repo, "docs");
        Directory.CreateDirectory(docs);

        var results = new BenchResults(MachineDescription(), o.CommandLine, DateTimeOffset.UtcNow, [], []);
        var saved = Path.Combine(docs, "benchmarks-migration.json");
        if (o.OverheadOnly)
        {
            if (!File.Exists(saved) || JsonSerializer.Deserialize(File.ReadAllText(saved), BenchJson.Default.BenchResults) is not { } previous)
            {
                Console.Error.WriteLine($"ferry bench: --overhead-only needs an earlier run's {saved}");
                return ExitCodes.Failure;
            }
            results = previous with { Overhead = [] };
            workloads = [];
        }
        if (!EnsureWorkloads(repo, workloads)) return ExitCodes.Failure;
        using (var agents = new LocalAgents("ferry-bench-"))
        {
            foreach (var w in workloads)
            {
                foreach (var size in sizes)
                {
                    await MeasureAsync(agents, repo, w, size, strategies, trackings, results.Migrations, ct);
                    Write(docs, results);
                }
            }
        }
        if (o.Overhead)
        {
            foreach (var w in Suite)
            {
                try
                {
                    results.Overhead.Add(MeasureOverhead(repo, w));
                }
                catch (Exception e) when (e is InvalidOperationException or Wasm.WasmException)
                {
                    Say($"overhead {w}: not measured: {e.Message}");
                    results.Overhead.Add(new OverheadSample(w, [], 0, 0, Error: e.Message));
                }
                Write(docs, results);
            }
        }
        Write(docs, results);
        File.WriteAllText(saved, JsonSerializer.Serialize(results, BenchJson.Default.BenchResults));
        if (!o.OverheadOnly) BenchTable.Replace(Path.Combine(docs, "benchmarks.md"), "| migration |", BenchReport.SummaryRows(results));
        if (o.Json) Console.WriteLine(JsonSerializer.Serialize(results, BenchJson.Default.BenchResults));
        Say($"wrote {Path.Combine(docs, "benchmarks-migration.md")} and {Path.Combine(docs, "migration-downtime.svg")}");
        return ExitCodes.Ok;
    }

    internal static readonly string[] Suite = ["btree", "hashjoin", "bfs", "pagerank", "kvstore", "xsbench", "svm", "blockchain", "microbench"];

    /// <summary>One instance of <paramref name="workload"/> at <paramref name="size"/>, migrated back and forth with every strategy × tracking.</summary>
    private static async Task MeasureAsync(LocalAgents agents, string repo, string workload, string size, string[] strategies, string[] trackings,
        List<MigrationSample> into, CancellationToken ct)
    {
        SizeParser.TryParse(size, out var bytes);
        var flags = FlagsFor(workload);
        var wasm = Path.Combine(repo, "workloads", "out", "wasm32", workload + ".wasm");
        Say($"{workload} {string.Join(' ', flags)} at {size}: starting on alpha");
        var w = await LocalAgents.RunAsync(agents.A, wasm, ["--mem", size, "--seconds", "3600", "--progress", "1", .. flags]);
        if (!await LocalAgents.WaitForLineAsync(agents.A, w.Id, "progress ", TimeSpan.FromMinutes(5)))
        {
            Say($"{workload} at {size} ended before it started working; skipped");
            return;
        }
        var here = agents.A;
        var there = agents.B;
        foreach (var strategy in strategies)
        {
            // Stop-and-copy tracks nothing: one measurement.
            foreach (var tracking in strategy == "stopcopy" ? ["compiler"] : trackings)
            {
                var request = new MigrateRequest { To = there.Display, Strategy = strategy, Tracking = tracking, RequestId = Guid.NewGuid().ToString() };
                Say($"{workload} {size}: {strategy}{(strategy == "stopcopy" ? "" : $" ({tracking} tracking)")} {(here == agents.A ? "alpha → beta" : "beta → alpha")}");
                var load = LoadAverage();
                var result = await MigrateOnceAsync(here, w.Id, request, ct);
                into.Add(new MigrationSample
                {
                    Workload = workload,
                    Flags = flags,
                    Size = size,
                    SizeBytes = bytes,
                    Strategy = strategy,
                    Tracking = strategy == "stopcopy" ? "-" : tracking,
                    From = here == agents.A ? "alpha" : "beta",
                    To = here == agents.A ? "beta" : "alpha",
                    Ok = result.Ok == true,
                    Error = result.Error,
                    Load = load,
                    Report = result.Report,
                });
                if (result.Ok == true)
                {
                    var r = result.Report!;
                    Say(string.Create(CultureInfo.InvariantCulture, $"  downtime {r.DowntimeMs:0.0} ms{Parts(r.DowntimeParts)}, total {r.TotalMs:0} ms, {r.Rounds} rounds, {r.BytesSent >> 20} MiB{(r.AutoConvergeShare > 0 ? $", throttled up to {r.AutoConvergeShare:P0}" : "")}"));
                    (here, there) = (there, here);
                }
                else
                {
                    Say($"  not measured: {result.Error}");
                    if (result.SourceResumed != true) return; // the workload is gone
                }
            }
        }
        await StopQuietlyAsync(here, w.Id, Say, ct);
    }

    /// <summary>Builds the suite programs that are missing; false (and why, on stderr) if one cannot be built.</summary>
    internal static bool EnsureWorkloads(string repo, IEnumerable<string> workloads)
    {
        foreach (var w in workloads)
        {
            try
            {
                LocalAgents.EnsureWorkload(repo, w);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine($"ferry bench: {e.Message}");
                return false;
            }
        }
        return true;
    }

    /// <summary>One migration through the agents; an agent that refuses or cannot be reached is a failed sample, the source still running.</summary>
    internal static async Task<MigrationEvent> MigrateOnceAsync(AgentClient here, string workloadId, MigrateRequest request, CancellationToken ct)
    {
        try
        {
            return await MigrateCommand.RunAsync(here, workloadId, request, showProgress: !Console.IsErrorRedirected, ct);
        }
        catch (Exception e) when (e is AgentErrorException or AgentUnreachableException)
        {
            return new MigrationEvent { Event = "result", Ok = false, Error = e.Message, SourceResumed = true };
        }
    }

    internal static async Task StopQuietlyAsync(AgentClient agent, string workloadId, Action<string> say, CancellationToken ct)
    {
        try
        {
            await agent.StopAsync(workloadId, ct);
        }
        catch (Exception e) when (e is AgentErrorException or AgentUnreachableException)
        {
            say($"could not stop {workloadId}: {e.Message}");
        }
    }

    internal static double LoadAverage() =>
        File.Exists("/proc/loadavg") && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture, out var l) ? l : 0;

    /// <summary>Runs a suite program in this process with and without compiled tracking; median of 5 interleaved runs each.</summary>
    private static OverheadSample MeasureOverhead(string repo, string workload)
    {
        var wasm = LocalAgents.EnsureWorkload(repo, workload);
        var module = Wasm.Binary.ModuleDecoder.Decode(File.ReadAllBytes(wasm));
        Wasm.Validation.ModuleValidator.Validate(module);
        // Calibrate: how many operations take about 1.5 s here (uninstrumented; microbench unthrottled)?
        var (_, _, probe) = RunOnce(module, workload, ["--mem", "64M", "--seconds", "1.5", "--progress", "0"], CompileOptions.Default);
        var ops = LocalAgents.OpsOf(probe) ?? 100000;
        string[] args = ["--mem", "64M", "--ops", ops.ToString(CultureInfo.InvariantCulture), "--progress", "0"];
        var configs = new[]
        {
            CompileOptions.Default,
            CompileOptions.Default with { DirtyTracking = true },
        };
        var times = configs.Select(_ => new List<double>()).ToArray();
        var walls = configs.Select(_ => new List<double>()).ToArray();
        string? expected = null;
        for (var rep = 0; rep < 5; rep++)
        {
            for (var c = 0; c < configs.Length; c++)
            {
                var (cpu, wall, output) = RunOnce(module, workload, args, configs[c]);
                expected ??= output;
                if (output != expected) throw new InvalidOperationException($"{workload}: different output with {configs[c]}");
                times[c].Add(cpu);
                walls[c].Add(wall);
            }
        }
        double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
        var sample = new OverheadSample(workload, args, Median(times[0]), Median(times[1]), Median(walls[0]), Median(walls[1]));
        Say(string.Create(CultureInfo.InvariantCulture, $"overhead {workload}: CPU {sample.PlainSeconds:0.000} s plain, {sample.TrackedSeconds:0.000} s tracked ({sample.TrackingOverhead:+0.0%;-0.0%}); wall {sample.WallOverhead:+0.0%;-0.0%}"));
        return sample;
    }

    private static (double CpuSeconds, double WallSeconds, string Output) RunOnce(Wasm.Module module, string name, string[] args, CompileOptions compile)
    {
        var stdout = new MemoryStream();
        var options = new WasiOptions
        {
            Args = [name + ".wasm", .. args],
            Stdin = WasiStdio.FromStream(Stream.Null),
            Stdout = WasiStdio.FromStream(stdout),
            Stderr = WasiStdio.FromStream(Stream.Null),
        };
        using var program = GuestProgram.Create(module, WasiEnvironment.Create(options), compile, InstanceOptions.Default);
        using var self = Process.GetCurrentProcess();
        var cpu0 = self.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        program.Start();
        var end = program.Completion.GetAwaiter().GetResult();
        var wall = sw.Elapsed.TotalSeconds;
        self.Refresh();
        var cpu = (self.TotalProcessorTime - cpu0).TotalSeconds;
        if (end.Kind != GuestEndKind.Exited || end.ExitCode != 0) throw new InvalidOperationException($"{name} {string.Join(' ', args)}: {end.Kind} {end.ExitCode} {end.Message}");
        return (cpu, wall, Encoding.UTF8.GetString(stdout.ToArray()));
    }

    internal static string MachineDescription()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?"
            : "?";
        var memKb = File.Exists("/proc/meminfo")
            ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] ?? "0"
            : "0";
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
        return string.Create(CultureInfo.InvariantCulture,
            $"{Environment.ProcessorCount} cores ({cpu}), {long.Parse(memKb, CultureInfo.InvariantCulture) >> 20} GiB, Linux {Environment.OSVersion.Version}, .NET {Environment.Version}; load average {load} at the start");
    }

    private static void Write(string docs, BenchResults results)
    {
        File.WriteAllText(Path.Combine(docs, "benchmarks-migration.md"), BenchReport.Markdown(results));
        File.WriteAllText(Path.Combine(docs, "migration-downtime.svg"), BenchReport.Svg(results));
    }
}

/// <summary>The cross-area results table at the top of docs/benchmarks.md, which several benchmarks update.</summary>
internal static class BenchTable
{
    /// <summary>
    /// Replaces the rows starting with <paramref name="rowPrefix"/> in the file's first table by <paramref name="rows"/>
    /// (appended at the table's end), so the table stays one table with the prose below it.
    /// </summary>
    public static void Replace(string file, string rowPrefix, List<string> rows)
    {
        if (!File.Exists(file) || rows.Count == 0) return;
        var lines = File.ReadAllLines(file).Where(l => !l.StartsWith(rowPrefix, StringComparison.Ordinal)).ToList();
        var start = lines.FindIndex(l => l.StartsWith('|'));
        if (start < 0)
        {
            lines.AddRange(rows);
        }
        else
        {
            var end = start;
            while (end < lines.Count && lines[end].StartsWith('|')) end++;
            lines.InsertRange(end, rows);
        }
        File.WriteAllText(file, string.Join('\n', lines) + "\n");
    }
}
