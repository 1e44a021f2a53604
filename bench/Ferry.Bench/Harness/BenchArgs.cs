using System.Globalization;

namespace Ferry.Bench.Harness;

/// <summary>
/// Options shared by the stopwatch benchmarks: `--json` (one JSON document on stdout instead of tables),
/// `--quick` (smaller sizes, a smoke test whose figures mean little), `--reps N`, and names of parts to run.
/// </summary>
public sealed class BenchArgs
{
    public bool Json { get; private init; }
    public bool Quick { get; private init; }
    public int? Reps { get; private init; }
    public IReadOnlyList<string> Parts { get; private init; } = [];

    public static BenchArgs Parse(string[] args, IReadOnlyCollection<string> knownParts)
    {
        bool json = false, quick = false;
        int? reps = null;
        var parts = new List<string>();
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
                default:
                    if (!knownParts.Contains(args[i]))
                    {
                        throw new ArgumentException($"unknown argument '{args[i]}' (options: --json --quick --reps N; parts: {string.Join(' ', knownParts)})");
                    }
                    parts.Add(args[i]);
                    break;
            }
        }
        return new BenchArgs { Json = json, Quick = quick, Reps = reps, Parts = parts };
    }

    /// <summary>Whether a part runs: all of them when none is named.</summary>
    public bool Runs(string part) => Parts.Count == 0 || Parts.Contains(part);
}
