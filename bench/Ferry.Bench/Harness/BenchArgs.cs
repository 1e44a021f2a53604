using System.Globalization;

namespace Ferry.Bench.Harness;

/// <summary>
/// Options shared by the stopwatch benchmarks: `--json` (one JSON document on stdout instead of tables),
/// `--quick` (smaller sizes, a smoke test whose figures mean little), `--reps N`, `--builds N` (independent compilations per variant where a benchmark compares two), `--workloads a,b` (only these
/// suite programs), and names of parts to run.
/// </summary>
public sealed class BenchArgs
{
    public bool Json { get; private init; }
    public bool Quick { get; private init; }
    public int? Reps { get; private init; }
    public int? Builds { get; private init; }
    public IReadOnlyList<string> Parts { get; private init; } = [];

    /// <summary>Suite programs to run (empty: all).</summary>
    public IReadOnlyList<string> Workloads { get; private init; } = [];

    public static BenchArgs Parse(string[] args, IReadOnlyCollection<string> knownParts)
    {
        bool json = false, quick = false;
        int? reps = null, builds = null;
        var parts = new List<string>();
        var workloads = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json":
                    json = true;
                    break;
                case "--quick":
                    quick = true;
                    break;
                case "--reps" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0:
                    reps = n;
                    i++;
                    break;
                case "--builds" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var b) && b > 0:
                    builds = b;
                    i++;
                    break;
                case "--workloads" when i + 1 < args.Length:
                    workloads.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                    break;
                default:
                    if (!knownParts.Contains(args[i]))
                    {
                        throw new ArgumentException($"unknown argument '{args[i]}' (options: --json --quick --reps N --builds N --workloads a,b; parts: {string.Join(' ', knownParts)})");
                    }
                    parts.Add(args[i]);
                    break;
            }
        }
        return new BenchArgs { Json = json, Quick = quick, Reps = reps, Builds = builds, Parts = parts, Workloads = workloads };
    }

    /// <summary>Whether a part runs: all of them when none is named.</summary>
    public bool Runs(string part) => Parts.Count == 0 || Parts.Contains(part);

    /// <summary>The suite, narrowed to <see cref="Workloads"/> when given (an unknown name is an error).</summary>
    public IReadOnlyList<Workloads.WorkloadCase> Suite()
    {
        var all = Ferry.Bench.Workloads.WorkloadCase.Suite(Quick);
        if (Workloads.Count == 0) return all;
        var unknown = Workloads.Where(n => !all.Any(w => w.Name == n)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"unknown workload(s) {string.Join(", ", unknown)} (suite: {string.Join(", ", all.Select(w => w.Name))})");
        }
        return all.Where(w => Workloads.Contains(w.Name)).ToList();
    }
}
