namespace Ferry.Bench.Harness;

/// <summary>Where the repository's inputs and build outputs are (benchmarks read modules the build scripts produce).</summary>
public static class Repo
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    public static string Root => RootPath.Value;

    /// <summary>The git-ignored build directory; benchmark scratch files and built modules go under build/bench/.</summary>
    public static string BenchBuild
    {
        get
        {
            var dir = Path.Combine(Root, "build", "bench");
            Directory.CreateDirectory(dir);
            return dir;
        }
    }

    public static string File(params string[] parts) => Path.Combine([Root, .. parts]);

    // `dotnet run --project bench/Ferry.Bench` keeps the caller's working directory; fall back to the binary's
    // location so the bench also works when started from elsewhere.
    private static string FindRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (System.IO.File.Exists(Path.Combine(dir.FullName, "Ferry.sln"))) return dir.FullName;
            }
        }
        throw new InvalidOperationException("cannot find the repository root (a directory with Ferry.sln)");
    }
}
