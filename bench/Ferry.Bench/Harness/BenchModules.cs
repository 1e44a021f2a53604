namespace Ferry.Bench.Harness;

/// <summary>
/// The .wasm files the benchmarks use, built on demand from sources in the repository (outputs under build/,
/// which git ignores), so a fresh checkout only needs the toolchain that ./setup installs.
/// </summary>
public static class BenchModules
{
    /// <summary>The suite's programs, in docs/workloads.md order.</summary>
    public static readonly string[] WorkloadNames = ["btree", "hashjoin", "bfs", "pagerank", "kvstore", "xsbench", "svm", "blockchain", "microbench"];

    /// <summary>Real programs built by programs/build; optional (the build fetches sources and takes minutes).</summary>
    public static readonly string[] ProgramNames = ["lua", "sqlite3", "flite"];

    /// <summary>bench/kernels/kernels.c compiled with the command in its header comment.</summary>
    public static string Kernels()
    {
        var source = Repo.File("bench", "kernels", "kernels.c");
        var output = Path.Combine(Repo.BenchBuild, "kernels.wasm");
        if (!IsFresh(output, source))
        {
            Report.Progress("building build/bench/kernels.wasm");
            External.Run("clang", ["--target=wasm32", "-O2", "-mbulk-memory", "-nostdlib", "-Wl,--no-entry", "-Wl,--export-dynamic", "-o", output, source])
                .EnsureSuccess("clang (kernels.wasm)");
        }
        return output;
    }

    /// <summary>workloads/out/wasm32/NAME.wasm for every suite program, running workloads/build when any is missing.</summary>
    public static IReadOnlyList<(string Name, string Path)> Workloads()
    {
        var list = new List<(string, string)>();
        var missing = false;
        foreach (var n in WorkloadNames)
        {
            var p = Repo.File("workloads", "out", "wasm32", n + ".wasm");
            missing |= !File.Exists(p);
            list.Add((n, p));
        }
        if (missing)
        {
            Report.Progress("running workloads/build");
            External.Run(Repo.File("workloads", "build"), []).EnsureSuccess("workloads/build");
        }
        return list;
    }

    /// <summary>build/programs/NAME.wasm, for those that exist; the others are listed in <paramref name="absent"/>.</summary>
    public static IReadOnlyList<(string Name, string Path)> Programs(out List<string> absent)
    {
        var list = new List<(string, string)>();
        absent = [];
        foreach (var n in ProgramNames)
        {
            var p = Repo.File("build", "programs", n + ".wasm");
            if (File.Exists(p)) list.Add((n, p));
            else absent.Add(n);
        }
        return list;
    }

    /// <summary>A .wat file under bench/ assembled with wabt's wat2wasm into build/bench/.</summary>
    public static string Wat(params string[] relative)
    {
        var source = Repo.File(["bench", .. relative]);
        var output = Path.Combine(Repo.BenchBuild, Path.GetFileNameWithoutExtension(source) + ".wasm");
        if (!IsFresh(output, source))
        {
            External.Run("wat2wasm", [source, "-o", output]).EnsureSuccess("wat2wasm " + source);
        }
        return output;
    }

    private static bool IsFresh(string output, string source) =>
        File.Exists(output) && File.GetLastWriteTimeUtc(output) >= File.GetLastWriteTimeUtc(source);
}
