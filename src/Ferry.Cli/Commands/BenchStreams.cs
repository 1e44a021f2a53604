using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ferry.Agent.Api;

namespace Ferry.Cli.Commands;

/// <summary>One migration of the stream hand-off comparison: the sealed-bench sample and which agents carried it.</summary>
public sealed record StreamSample(bool HandedOver, SealedSample Migration);

public sealed record StreamBenchResults(string Machine, string Command, DateTimeOffset Date, List<StreamSample> Migrations);

[JsonSerializable(typeof(StreamBenchResults))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class StreamBenchJson : JsonSerializerContext;

/// <summary>
/// `ferry bench streams`: what handing migration streams to the destination runtime (`ferry agent --stream-handoff
/// true`, the default) saves against relaying their bytes through the destination agent (`--stream-handoff false`).
/// Two pairs of local agents run side by side, one of each kind; every repetition migrates one fresh instance
/// through each pair (the order alternates), plain and confidential, so both see the same machine. Writes
/// docs/benchmarks-streams.md and a summary row in docs/benchmarks.md.
/// </summary>
public static class BenchStreams
{
    public sealed record Options
    {
        public required string Size { get; init; }
        public required string Workloads { get; init; }
        public required string Strategy { get; init; }
        public required string Modes { get; init; }
        public required int Repeat { get; init; }
        public string? Docs { get; init; }
        public bool Json { get; init; }
        public required string CommandLine { get; init; }
    }

    private static void Say(string text) => Console.Error.WriteLine($"[bench streams] {text}");

    public static async Task<int> RunAsync(Options o, CancellationToken ct)
    {
        var repo = LocalAgents.RepoRoot();
        if (repo is null)
        {
            Console.Error.WriteLine("ferry bench: needs the Ferry repository (workloads/, docs/)");
            return ExitCodes.Failure;
        }
        if (!SizeParser.TryParse(o.Size, out _))
        {
            Console.Error.WriteLine($"ferry bench streams: --size: not a size: '{o.Size}'");
            return ExitCodes.Usage;
        }
        if (o.Repeat is < 1 or > 50)
        {
            Console.Error.WriteLine("ferry bench streams: --repeat must be between 1 and 50");
            return ExitCodes.Usage;
        }
        if (!MigrationNames.TryParseStrategy(o.Strategy, out _))
        {
            Console.Error.WriteLine($"ferry bench streams: --strategy: one of {string.Join(", ", MigrationNames.Strategies)}");
            return ExitCodes.Usage;
        }
        var modes = o.Modes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (modes.Length == 0 || modes.Any(m => m is not ("plain" or "sealed")))
        {
            Console.Error.WriteLine("ferry bench streams: --modes: plain, sealed or both (comma-separated)");
            return ExitCodes.Usage;
        }
        var workloads = o.Workloads.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (workloads is ["suite"]) workloads = BenchMigration.Suite;
        if (!BenchMigration.EnsureWorkloads(repo, workloads)) return ExitCodes.Failure;
        var docs = o.Docs ?? Path.Combine(repo, "docs");
        Directory.CreateDirectory(docs);
        var results = new StreamBenchResults(BenchMigration.MachineDescription(), o.CommandLine, DateTimeOffset.UtcNow, []);
        using (var relaying = new LocalAgents("ferry-bench-relay-", fleetTrust: true, "--stream-handoff", "false"))
        using (var handing = new LocalAgents("ferry-bench-handoff-", fleetTrust: true, "--stream-handoff", "true"))
        {
            foreach (var w in workloads)
            {
                for (var rep = 1; rep <= o.Repeat; rep++)
                {
                    foreach (var mode in modes)
                    {
                        bool[] order = rep % 2 == 1 ? [false, true] : [true, false];
                        foreach (var handedOver in order)
                        {
                            var samples = new List<SealedSample>();
                            var variant = handedOver ? "hand-off" : "relay";
                            await BenchSealed.MeasureAsync(handedOver ? handing : relaying, repo, w, o.Size, mode == "sealed", rep, [o.Strategy], "compiler", samples, ct,
                                text => Say($"[{variant}] {text}"));
                            results.Migrations.AddRange(samples.Select(s => new StreamSample(handedOver, s)));
                        }
                    }
                    File.WriteAllText(Path.Combine(docs, "benchmarks-streams.md"), Markdown(results));
                }
            }
        }
        File.WriteAllText(Path.Combine(docs, "benchmarks-streams.md"), Markdown(results));
        File.WriteAllText(Path.Combine(docs, "benchmarks-streams.json"), JsonSerializer.Serialize(results, StreamBenchJson.Default.StreamBenchResults));
        BenchTable.Replace(Path.Combine(docs, "benchmarks.md"), "| stream hand-off |", SummaryRows(results));
        if (o.Json) Console.WriteLine(JsonSerializer.Serialize(results, StreamBenchJson.Default.StreamBenchResults));
        Say($"wrote {Path.Combine(docs, "benchmarks-streams.md")}");
        return ExitCodes.Ok;
    }

    /// <summary>Relay and hand-off medians of one workload × mode (successful migrations only).</summary>
    public sealed record Pair(string Workload, string Size, bool Sealed, int Count,
        double RelayDowntimeMs, double HandoffDowntimeMs, double RelayReadyMs, double HandoffReadyMs,
        double RelayCommitMs, double HandoffCommitMs, double RelayTotalMs, double HandoffTotalMs)
    {
        public double DowntimeRatio => HandoffDowntimeMs / RelayDowntimeMs;
        public double TotalRatio => HandoffTotalMs / RelayTotalMs;
    }

    public static List<Pair> Pairs(StreamBenchResults r)
    {
        var pairs = new List<Pair>();
        foreach (var g in r.Migrations.Where(m => m.Migration.Ok && m.Migration.Report is not null).GroupBy(m => (m.Migration.Workload, m.Migration.Size, m.Migration.Sealed)))
        {
            var relay = g.Where(m => !m.HandedOver).Select(m => m.Migration.Report!).ToList();
            var handoff = g.Where(m => m.HandedOver).Select(m => m.Migration.Report!).ToList();
            if (relay.Count == 0 || handoff.Count == 0) continue;
            static double Part(Ferry.Migration.MigrationReport m, Func<Ferry.Migration.DowntimeBreakdown, double> part) => m.DowntimeParts is { } d ? part(d) : double.NaN;
            pairs.Add(new Pair(g.Key.Workload, g.Key.Size, g.Key.Sealed, Math.Min(relay.Count, handoff.Count),
                BenchSealed.Median(relay.Select(m => m.DowntimeMs)), BenchSealed.Median(handoff.Select(m => m.DowntimeMs)),
                BenchSealed.Median(relay.Select(m => Part(m, d => d.ReadyMs))), BenchSealed.Median(handoff.Select(m => Part(m, d => d.ReadyMs))),
                BenchSealed.Median(relay.Select(m => Part(m, d => d.CommitMs))), BenchSealed.Median(handoff.Select(m => Part(m, d => d.CommitMs))),
                BenchSealed.Median(relay.Select(m => m.TotalMs)), BenchSealed.Median(handoff.Select(m => m.TotalMs))));
        }
        return pairs;
    }

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    private static string F(double v, string format) => v.ToString(format, C);

    public static string Markdown(StreamBenchResults r)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Migration streams: handed over vs relayed");
        sb.AppendLine();
        sb.AppendLine("Generated by `ferry bench streams` (`src/Ferry.Cli/Commands/BenchStreams.cs`); rerun it to regenerate this page.");
        sb.AppendLine();
        sb.AppendLine($"- Command: `{r.Command}`");
        sb.AppendLine($"- Date: {r.Date:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine($"- Machine: {r.Machine}");
        sb.AppendLine();
        sb.AppendLine("Two pairs of agents on this machine, side by side: one relays every migration stream's bytes through the");
        sb.AppendLine("destination agent (`ferry agent --stream-handoff false`), the other hands each stream's TCP connection to the");
        sb.AppendLine("destination runtime (`--stream-handoff true`, the default; docs/migration.md). Each repetition migrates a fresh");
        sb.AppendLine("instance through each pair, alternating which goes first. Figures are the runtimes' own (`ferry migrate --json`);");
        sb.AppendLine("\"ready\" is the downtime from the state's sending to the destination's Ready, \"commit\" from Commit to Resumed");
        sb.AppendLine("(both include the trips through the destination agent when it relays). Medians of the repetitions.");
        sb.AppendLine();
        var pairs = Pairs(r);
        if (pairs.Count > 0)
        {
            sb.AppendLine("## Comparison (medians)");
            sb.AppendLine();
            sb.AppendLine("| workload | size | mode | n | relay downtime ms | hand-off downtime ms | hand-off ÷ relay | relay ready ms | hand-off ready ms | relay commit ms | hand-off commit ms | relay total s | hand-off total s | hand-off ÷ relay total |");
            sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var p in pairs)
            {
                sb.AppendLine($"| {p.Workload} | {p.Size} | {(p.Sealed ? "sealed" : "plain")} | {p.Count} | {F(p.RelayDowntimeMs, "0.0")} | {F(p.HandoffDowntimeMs, "0.0")} | {F(p.DowntimeRatio, "0.00")}× | {F(p.RelayReadyMs, "0.00")} | {F(p.HandoffReadyMs, "0.00")} | {F(p.RelayCommitMs, "0.00")} | {F(p.HandoffCommitMs, "0.00")} | {F(p.RelayTotalMs / 1000, "0.00")} | {F(p.HandoffTotalMs / 1000, "0.00")} | {F(p.TotalRatio, "0.00")}× |");
            }
            sb.AppendLine();
        }
        sb.AppendLine("## Every migration");
        sb.AppendLine();
        sb.AppendLine("| workload | size | mode | streams | rep | strategy | downtime ms | collect | last pages | state | ready | commit | total s | MiB/s | load | note |");
        sb.AppendLine("|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var s in r.Migrations)
        {
            var m = s.Migration;
            var head = $"| {m.Workload} | {m.Size} | {(m.Sealed ? "sealed" : "plain")} | {(s.HandedOver ? "hand-off" : "relay")} | {m.Repetition} | {m.Strategy} |";
            if (m.Report is { } p && m.Ok)
            {
                var d = p.DowntimeParts;
                string Part(Func<Ferry.Migration.DowntimeBreakdown, double> f) => d is null ? "" : F(f(d), "0.00");
                sb.AppendLine($"{head} {F(p.DowntimeMs, "0.0")} | {Part(x => x.CollectMs)} | {Part(x => x.FinalPagesMs)} | {Part(x => x.StateMs)} | {Part(x => x.ReadyMs)} | {Part(x => x.CommitMs)} | {F(p.TotalMs / 1000, "0.00")} | {F(p.BandwidthMBps, "0")} | {F(m.Load, "0.0")} | |");
            }
            else
            {
                sb.AppendLine($"{head} | | | | | | | | {F(m.Load, "0.0")} | not measured: {m.Error?.ReplaceLineEndings(" ")} |");
            }
        }
        return sb.ToString();
    }

    /// <summary>The headline row for docs/benchmarks.md: hand-off ÷ relay downtime and total, geometric means over the pairs.</summary>
    public static List<string> SummaryRows(StreamBenchResults r)
    {
        var pairs = Pairs(r);
        if (pairs.Count == 0) return [];
        var date = r.Date.ToString("yyyy-MM-dd", C);
        var what = string.Join(", ", pairs.Select(p => p.Workload).Distinct()) + $" at {pairs[0].Size}, {pairs.Count} workload × mode pairs";
        return [$"| stream hand-off | migration streams handed to the destination runtime ÷ relayed through its agent ({what}) | downtime {F(BenchSealed.GeoMean(pairs.Select(p => p.DowntimeRatio)), "0.00")}×, total {F(BenchSealed.GeoMean(pairs.Select(p => p.TotalRatio)), "0.00")}× (geometric means) | relayed streams, same run | `ferry bench streams` ([details](benchmarks-streams.md)) | {date} |"];
    }
}
