namespace Ferry.Workloads.Tests;

/// <summary>
/// How to run a workload build. Each runner turns (workload name, workload arguments) into a
/// command line; every comparison test takes runners as parameters, so checking another runtime is
/// one more entry in <see cref="ComparedWithNative"/>.
/// </summary>
public sealed record Runner(string Name, Func<WorkloadBuild, string, IReadOnlyList<string>, (string File, List<string> Args)> Command)
{
    public RunResult Run(WorkloadBuild b, string workload, IReadOnlyList<string> args, double timeoutSeconds = 60)
    {
        var (file, argv) = Command(b, workload, args);
        return WorkloadBuild.Run(file, argv, TimeSpan.FromSeconds(timeoutSeconds));
    }

    public override string ToString() => Name;

    /// <summary>gcc -O2 build: the reference every other runner must match bit for bit.</summary>
    public static readonly Runner Native = new("native",
        (b, w, a) => (Path.Combine(b.Out, "native", w), [.. a]));

    /// <summary>The wasm32-wasi build under node's WASI preview1 (workloads/tools/run-wasi.mjs).</summary>
    public static readonly Runner NodeWasi = new("node-wasi",
        (b, w, a) => ("node", [Path.Combine(b.WorkloadsDir, "tools", "run-wasi.mjs"), Path.Combine(b.Out, "wasm32", w + ".wasm"), .. a]));

    /// <summary>The freestanding wasm64 microbenchmark under node with the ferry host ABI.</summary>
    public static readonly Runner NodeWasm64 = new("node-wasm64",
        (b, w, a) => ("node", ["--experimental-wasm-memory64", Path.Combine(b.WorkloadsDir, "tools", "run-wasm64.mjs"),
            Path.Combine(b.Out, "wasm64", w + ".wasm"), .. a]));

    /// <summary>The wasm32-wasi build under Ferry's own engine (`ferry run`, the Release build `./test` makes).</summary>
    public static readonly Runner Ferry = new("ferry",
        (b, w, a) => ("dotnet", [FerryDll(b), "run", Path.Combine(b.Out, "wasm32", w + ".wasm"), .. a]));

    /// <summary>The freestanding wasm64 microbenchmark under Ferry, which implements the ferry host ABI.</summary>
    public static readonly Runner FerryWasm64 = new("ferry-wasm64",
        (b, w, a) => ("dotnet", [FerryDll(b), "run", Path.Combine(b.Out, "wasm64", w + ".wasm"), .. a]));

    private static string FerryDll(WorkloadBuild b)
    {
        var dll = Path.Combine(b.RepoRoot, "src", "Ferry.Cli", "bin", "Release", "net10.0", "ferry.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: build the solution in Release first (./test does)");
    }

    /// <summary>Runners whose stdout must equal the native build's for every workload.</summary>
    public static readonly Runner[] ComparedWithNative = [NodeWasi, Ferry];
}
