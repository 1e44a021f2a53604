using System.Globalization;
using Ferry.Bench.Harness;

namespace Ferry.Bench.Workloads;

/// <summary>A suite program (docs/workloads.md) with the arguments the benchmarks give it.</summary>
public sealed record WorkloadCase(string Name, string Path, IReadOnlyList<string> Args)
{
    /// <summary>
    /// Footprint for every program: small enough that initialisation is a minor part of the run, large enough that
    /// the data does not fit in cache.
    /// </summary>
    public const string Memory = "64M";

    // Operation counts sized for ~1–3 s under Ferry on this 2-core machine (measured with `engine`: see
    // docs/benchmarks.md); --quick divides them by 10 for a smoke test.
    private static readonly Dictionary<string, long> Ops = new()
    {
        ["btree"] = 1_500_000,
        ["hashjoin"] = 8_000_000,
        ["bfs"] = 1_500_000,
        ["pagerank"] = 3_000_000,
        ["kvstore"] = 1_200_000,
        ["xsbench"] = 300_000,
        ["svm"] = 600_000,
        ["blockchain"] = 1_000_000,
        ["microbench"] = 40_000_000,
    };

    public static IReadOnlyList<WorkloadCase> Suite(bool quick)
    {
        var list = new List<WorkloadCase>();
        foreach (var (name, path) in BenchModules.Workloads())
        {
            var ops = Ops[name] / (quick ? 10 : 1);
            list.Add(new WorkloadCase(name, path, ["--mem", Memory, "--ops", ops.ToString(CultureInfo.InvariantCulture), "--progress", "0"]));
        }
        return list;
    }

    public string CommandLine => $"{Name} {string.Join(' ', Args)}";

    /// <summary>The same case with <paramref name="factor"/> times as many operations (a longer run).</summary>
    public WorkloadCase WithMoreOps(int factor)
    {
        var args = new List<string>(Args);
        var at = args.IndexOf("--ops") + 1;
        args[at] = (long.Parse(args[at], CultureInfo.InvariantCulture) * factor).ToString(CultureInfo.InvariantCulture);
        return this with { Args = args };
    }
}
