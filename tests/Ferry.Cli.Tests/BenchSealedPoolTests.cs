using Ferry.Cli.Commands;
using Ferry.Migration;
using Ferry.Migration.Protocol;

namespace Ferry.Cli.Tests;

/// <summary><c>ferry bench sealed --pool</c>: earlier runs compared as one, medians over all their repetitions.</summary>
public sealed class BenchSealedPoolTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("ferry-pool-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static SealedSample Sample(bool sealedRun, int rep, double totalMs, double downtimeMs) => new()
    {
        Workload = "btree",
        Size = "1G",
        Strategy = "precopy",
        Tracking = "compiler",
        Sealed = sealedRun,
        Repetition = rep,
        Ok = true,
        Report = new MigrationReport
        {
            MigrationId = Guid.NewGuid().ToString(),
            Strategy = Strategy.PreCopy,
            Tracking = TrackingMethod.Compiler,
            Succeeded = true,
            TotalMs = totalMs,
            DowntimeMs = downtimeMs,
        },
    };

    private static SealedBenchResults Run(DateTimeOffset date, params SealedSample[] samples) =>
        new("2 cores", "ferry bench sealed --repeat 2", date, [.. samples]);

    [Fact]
    public void Pooled_runs_compare_the_medians_of_every_repetition()
    {
        // Alone, the first run misses the downtime goal (plain 4, sealed 9 ms) and the second meets it; together
        // the medians come from all four migrations per mode.
        var first = Run(new DateTimeOffset(2026, 12, 6, 18, 0, 0, TimeSpan.Zero),
            Sample(false, 1, 1000, 4), Sample(true, 1, 1100, 9), Sample(false, 2, 1200, 4), Sample(true, 2, 1000, 9));
        var second = Run(new DateTimeOffset(2026, 12, 6, 19, 0, 0, TimeSpan.Zero),
            Sample(false, 1, 900, 6), Sample(true, 1, 950, 5), Sample(false, 2, 1100, 7), Sample(true, 2, 1000, 5));
        Assert.False(Assert.Single(BenchSealed.Pairs(first)).DowntimeMet);

        var pooled = BenchSealed.Pool([first, second], "ferry bench sealed --pool a.json b.json");
        var pair = Assert.Single(BenchSealed.Pairs(pooled));
        Assert.Equal((4, 4), (pair.PlainCount, pair.SealedCount));
        Assert.Equal(5, pair.PlainDowntimeMs); // 4, 4, 6, 7
        Assert.Equal(7, pair.SealedDowntimeMs); // 5, 5, 9, 9
        Assert.True(pair.DowntimeMet);
        Assert.Equal(1050, pair.PlainTotalMs);
        Assert.Equal(second.Date, pooled.Date);
        Assert.Contains("pooling 2 runs", pooled.Command);
        Assert.Contains("2026-12-06 18:00", pooled.Command);
    }

    [Fact]
    public async Task Pooling_writes_the_pooled_page_and_refuses_a_file_that_is_not_a_result()
    {
        var good = Path.Combine(dir, "run.json");
        File.WriteAllText(good, System.Text.Json.JsonSerializer.Serialize(
            Run(DateTimeOffset.UtcNow, Sample(false, 1, 1000, 4), Sample(true, 1, 1100, 5)), SealedBenchJson.Default.SealedBenchResults));
        var bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, "{ not json");
        BenchSealed.Options Options(params string[] files) => new()
        {
            Size = "1G",
            Workloads = "suite",
            Strategies = "precopy",
            Tracking = "compiler",
            Repeat = 1,
            Docs = dir,
            Pool = files,
            CommandLine = "ferry bench sealed --pool",
        };

        Assert.Equal(ExitCodes.Ok, await BenchSealed.RunAsync(Options(good, good), default));
        var page = File.ReadAllText(Path.Combine(dir, "benchmarks-sealed-pooled.md"));
        Assert.Contains("| btree | 1G | precopy |", page);
        Assert.False(File.Exists(Path.Combine(dir, "benchmarks-sealed.md")));

        Assert.Equal(ExitCodes.Usage, await BenchSealed.RunAsync(Options(good, bad), default));
        Assert.Equal(ExitCodes.Usage, await BenchSealed.RunAsync(Options(Path.Combine(dir, "missing.json")), default));
    }
}
