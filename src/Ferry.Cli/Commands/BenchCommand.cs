using System.CommandLine;

namespace Ferry.Cli.Commands;

/// <summary>`ferry bench …`: measurements that write their tables and plots to docs/.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Memory sizes, comma-separated", DefaultValueFactory = _ => "256M,1G,3G" };
        var workloads = new Option<string>("--workloads")
        {
            Description = "Suite programs, comma-separated (microbench runs at --rate 1000: a low write rate)",
            DefaultValueFactory = _ => "microbench,kvstore",
        };
        var strategies = new Option<string>("--strategies") { Description = "Strategies, comma-separated", DefaultValueFactory = _ => "stopcopy,precopy,postcopy,hybrid" };
        var tracking = new Option<string>("--tracking") { Description = "Tracking methods, comma-separated", DefaultValueFactory = _ => "compiler,kernel" };
        var overhead = new Option<bool>("--overhead") { Description = "Also measure the run-time cost of compiler tracking on the whole suite", DefaultValueFactory = _ => true };
        var overheadOnly = new Option<bool>("--overhead-only") { Description = "Measure only the tracking overhead (keep the last run's migrations)" };
        var docs = new Option<string?>("--docs") { Description = "Where to write benchmarks-migration.md and the plot (default: the repository's docs/)" };
        var json = new Option<bool>("--json") { Description = "Print every measurement as JSON on stdout" };
        var migration = new Command("migration", "Downtime and total time of every strategy × tracking method at several sizes; tracking overhead")
        {
            sizes, workloads, strategies, tracking, overhead, overheadOnly, docs, json,
        };
        migration.SetAction((parse, ct) => BenchMigration.RunAsync(new BenchMigration.Options
        {
            Sizes = parse.GetValue(sizes)!,
            Workloads = parse.GetValue(workloads)!,
            Strategies = parse.GetValue(strategies)!,
            Tracking = parse.GetValue(tracking)!,
            Overhead = parse.GetValue(overhead) || parse.GetValue(overheadOnly),
            OverheadOnly = parse.GetValue(overheadOnly),
            Docs = parse.GetValue(docs),
            Json = parse.GetValue(json),
            CommandLine = "ferry " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
        }, ct));
        var sealedSize = new Option<string>("--size") { Description = "Memory size of every instance", DefaultValueFactory = _ => "1G" };
        var sealedWorkloads = new Option<string>("--workloads")
        {
            Description = "Suite programs, comma-separated, or 'suite' for all nine",
            DefaultValueFactory = _ => "suite",
        };
        var sealedStrategies = new Option<string>("--strategies") { Description = "Strategies, comma-separated", DefaultValueFactory = _ => "stopcopy,precopy" };
        var sealedTracking = new Option<string>("--tracking") { Description = "Tracking method for live strategies", DefaultValueFactory = _ => "compiler" };
        var repeat = new Option<int>("--repeat") { Description = "Instances per mode and program (the order of plain and sealed alternates)", DefaultValueFactory = _ => 1 };
        var sealedDocs = new Option<string?>("--docs") { Description = "Where to write benchmarks-sealed.md (default: the repository's docs/)" };
        var sealedJson = new Option<bool>("--json") { Description = "Print every measurement as JSON on stdout" };
        var sealedPool = new Option<string[]>("--pool")
        {
            Description = "Compare earlier runs together instead of migrating: their JSON files (--json output or benchmarks-sealed.json); writes benchmarks-sealed-pooled.md",
            AllowMultipleArgumentsPerToken = true,
        };
        var sealedCommand = new Command("sealed", "Confidential (attested, AES-256-GCM sealed) vs plain migration of the suite: total time and downtime")
        {
            sealedSize, sealedWorkloads, sealedStrategies, sealedTracking, repeat, sealedDocs, sealedJson, sealedPool,
        };
        sealedCommand.SetAction((parse, ct) => BenchSealed.RunAsync(new BenchSealed.Options
        {
            Size = parse.GetValue(sealedSize)!,
            Workloads = parse.GetValue(sealedWorkloads)!,
            Strategies = parse.GetValue(sealedStrategies)!,
            Tracking = parse.GetValue(sealedTracking)!,
            Repeat = parse.GetValue(repeat),
            Docs = parse.GetValue(sealedDocs),
            Json = parse.GetValue(sealedJson),
            Pool = parse.GetValue(sealedPool) ?? [],
            CommandLine = "ferry " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
        }, ct));
        var streamsSize = new Option<string>("--size") { Description = "Memory size of every instance", DefaultValueFactory = _ => "1G" };
        var streamsWorkloads = new Option<string>("--workloads") { Description = "Suite programs, comma-separated, or 'suite'", DefaultValueFactory = _ => "kvstore,btree,microbench" };
        var streamsStrategy = new Option<string>("--strategy") { Description = "The strategy of every migration", DefaultValueFactory = _ => "precopy" };
        var streamsModes = new Option<string>("--modes") { Description = "plain, sealed, or both (comma-separated)", DefaultValueFactory = _ => "plain,sealed" };
        var streamsRepeat = new Option<int>("--repeat") { Description = "Migrations per workload, mode and kind of agents (the order alternates)", DefaultValueFactory = _ => 3 };
        var streamsDocs = new Option<string?>("--docs") { Description = "Where to write benchmarks-streams.md (default: the repository's docs/)" };
        var streamsJson = new Option<bool>("--json") { Description = "Print every measurement as JSON on stdout" };
        var streamsCommand = new Command("streams", "Migration streams handed to the destination runtime vs relayed through its agent: downtime and total time, same run")
        {
            streamsSize, streamsWorkloads, streamsStrategy, streamsModes, streamsRepeat, streamsDocs, streamsJson,
        };
        streamsCommand.SetAction((parse, ct) => BenchStreams.RunAsync(new BenchStreams.Options
        {
            Size = parse.GetValue(streamsSize)!,
            Workloads = parse.GetValue(streamsWorkloads)!,
            Strategy = parse.GetValue(streamsStrategy)!,
            Modes = parse.GetValue(streamsModes)!,
            Repeat = parse.GetValue(streamsRepeat),
            Docs = parse.GetValue(streamsDocs),
            Json = parse.GetValue(streamsJson),
            CommandLine = "ferry " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
        }, ct));
        return new Command("bench", "Benchmarks (results go to docs/)") { migration, sealedCommand, streamsCommand };
    }
}
