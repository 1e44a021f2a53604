using System.Diagnostics;
using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;

namespace Ferry.CpuFeatures.Tests;

/// <summary>
/// Compiles the C programs in Programs/ once per test run into a private temporary directory (removed at the
/// end) with the gcc/clang that ./setup installs. A missing compiler is a test failure, not a skip.
/// </summary>
public sealed class TestPrograms : IDisposable
{
    private readonly string _sources = System.IO.Path.Combine(AppContext.BaseDirectory, "Programs");

    public TestPrograms()
    {
        Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"ferry-cpu-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(System.IO.Path.Combine(Directory, "lib", "glibc-hwcaps", "x86-64-v3"));
        Gcc("-O2 -mavx2", "avx2_main.c", "avx2_main");
        Gcc("-O2", "avx512_gated.c", "avx512_gated");
        Gcc("-O0", "avx512_gated.c", "avx512_gated_O0");
        Compile("clang", "-O2", "avx512_gated.c", "avx512_gated_clang");
        Run("strip", $"-o {Q(Path("avx512_gated_stripped"))} {Q(Path("avx512_gated"))}");
        Gcc("-O2", "ifunc.c", "ifunc");
        Gcc("-O2", "jump_table.c", "jump_table");
        Run("strip", Q(Path("jump_table")));
        Gcc("-O2", "data_in_text.c", "data_in_text");
        Gcc("-O2 -mpopcnt -mbmi2", "popcnt_bmi2.c", "popcnt_bmi2");
        Gcc("-O2 -Wl,-z,x86-64-v3", "baseline.c", "baseline_v3note");
        var lib = Path("lib");
        Gcc("-O2 -shared -fPIC", "libscale.c", "lib/libscale.so");
        Gcc("-O2 -shared -fPIC -march=x86-64-v3", "libscale.c", "lib/glibc-hwcaps/x86-64-v3/libscale.so");
        Gcc($"-O2 -L{Q(lib)} -Wl,-rpath,{Q(lib)}", "uses_libscale.c", "uses_libscale", "-lscale");
    }

    public string Directory { get; }

    public string Path(string name) => System.IO.Path.Combine(Directory, name);

    /// <summary>Parses and analyses one program on its own.</summary>
    public FileAnalysis Analyze(string name)
    {
        using var image = ElfImage.Open(Path(name));
        return BinaryAnalyzer.Analyze(Path(name), ElfFile.Parse(image));
    }

    private void Gcc(string flags, string source, string output, string libraries = "") => Compile("gcc", flags, source, output, libraries);

    private void Compile(string compiler, string flags, string source, string output, string libraries = "") =>
        Run(compiler, $"{flags} -o {Q(Path(output))} {Q(System.IO.Path.Combine(_sources, source))} {libraries}");

    private static string Q(string path) => $"'{path}'";

    public static (int ExitCode, string Output) Run(string program, string arguments, bool check = true)
    {
        var info = new ProcessStartInfo("/bin/sh", ["-c", $"{program} {arguments}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {arguments} did not finish in 120 s");
        }
        string output = stdout.Result + stderr.Result;
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"`{program} {arguments}` failed ({process.ExitCode}): {output}");
        }
        return (process.ExitCode, output);
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class CompiledProgramsCollection : ICollectionFixture<TestPrograms>
{
    public const string Name = "compiled programs";
}
