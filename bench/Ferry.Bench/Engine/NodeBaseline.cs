using System.Globalization;
using System.Text.Json;
using Ferry.Bench.Harness;

namespace Ferry.Bench.Engine;

/// <summary>Runs the bench/engine/*.mjs scripts under node and reads their JSON lines.</summary>
public static class NodeBaseline
{
    /// <summary>Best-of-<paramref name="reps"/> `new WebAssembly.Module` time per file, under the given V8 flags.</summary>
    public static Dictionary<string, Samples> Compile(IReadOnlyList<string> files, int reps, params string[] v8Flags)
    {
        var result = External.Run("node", ["--expose-gc", .. v8Flags, Repo.File("bench", "engine", "compile.mjs"), reps.ToString(CultureInfo.InvariantCulture), .. files])
            .EnsureSuccess($"node {string.Join(' ', v8Flags)} compile.mjs");
        var times = new Dictionary<string, Samples>();
        foreach (var line in result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            times[doc.RootElement.GetProperty("file").GetString()!] = ReadSamples(doc.RootElement);
        }
        return times;
    }

    /// <summary>One kernel: warm-up call, then <paramref name="reps"/> timed calls in one node process (wall and process CPU ms).</summary>
    public static (string Result, Timings Ms) Kernel(string file, string function, long argument, int reps)
    {
        var result = External.Run("node", [Repo.File("bench", "engine", "kernels.mjs"), file, function,
            argument.ToString(CultureInfo.InvariantCulture), reps.ToString(CultureInfo.InvariantCulture)]).EnsureSuccess($"node kernels.mjs {function}");
        using var doc = JsonDocument.Parse(result.Stdout);
        var times = new Timings();
        var wall = doc.RootElement.GetProperty("ms");
        var cpu = doc.RootElement.GetProperty("cpu_ms");
        for (var i = 0; i < wall.GetArrayLength(); i++) times.Add(wall[i].GetDouble(), cpu[i].GetDouble());
        return (doc.RootElement.GetProperty("result").GetString()!, times);
    }

    private static Samples ReadSamples(JsonElement root)
    {
        var s = new Samples();
        foreach (var v in root.GetProperty("ms").EnumerateArray()) s.Add(v.GetDouble());
        return s;
    }
}
