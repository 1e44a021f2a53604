using Ferry.Wasm.Compilation;
using Ferry.Wasm.SpecTests;

namespace Ferry.Wasm.Tests;

/// <summary>
/// The official WebAssembly 2.0 core spec tests and the memory64 proposal's tests, one test per .wast file.
/// Text-format assertions (module_type "text") are counted as skipped by the runner: Ferry reads binaries only.
/// </summary>
public class SpecSuiteTests
{
    /// <summary>
    /// Known conflicts between the memory64 proposal snapshot and WebAssembly 2.0, each with its reason.
    /// The proposal's tests were written against the MVP binary format; reference types (part of 2.0, and passing
    /// in core/binary.wast) made call_indirect's zero byte a table index.
    /// </summary>
    private static readonly Dictionary<(string File, int Line), string> KnownConflicts = new()
    {
        [("binary.wast", 71)] = "memory64 snapshot predates reference types: call_indirect's table index must be 0 there",
    };

    public static TheoryData<string> CoreFiles() => Files("core");

    public static TheoryData<string> Memory64Files() => Files(Path.Combine("proposals", "memory64"));

    private static TheoryData<string> Files(string sub)
    {
        var data = new TheoryData<string>();
        var dir = Path.Combine(TestPaths.SpecSuite, sub);
        foreach (var f in Directory.GetFiles(dir, "*.wast").Order(StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(CoreFiles))]
    public void Core(string file) => Run(Path.Combine(TestPaths.SpecSuite, "core", file), memory64: false);

    [Theory]
    [MemberData(nameof(Memory64Files))]
    public void Memory64(string file) => Run(Path.Combine(TestPaths.SpecSuite, "proposals", "memory64", file), memory64: true);

    /// <summary>
    /// The spec files that exercise loads and stores, compiled the way a kernel post-copy destination compiles
    /// (fully interruptible, accesses inline rather than through helpers) and with write tracking on.
    /// </summary>
    public static TheoryData<string> MemoryFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.SpecSuite, "core"), "*.wast").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(f);
            if (name.StartsWith("memory", StringComparison.Ordinal) || name.StartsWith("simd_load", StringComparison.Ordinal)
                || name.StartsWith("simd_store", StringComparison.Ordinal) || name is "address.wast" or "float_memory.wast" or "endianness.wast" or "align.wast")
            {
                data.Add(name);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MemoryFiles))]
    public void Memory_accesses_fully_interruptible(string file) =>
        Run(Path.Combine(TestPaths.SpecSuite, "core", file), memory64: false,
            CompileOptions.Default with { Collectible = true, FullyInterruptible = true, DirtyTracking = true });

    [Fact]
    public void Suite_is_complete()
    {
        Assert.Equal(146, Directory.GetFiles(Path.Combine(TestPaths.SpecSuite, "core"), "*.wast").Length);
    }

    private static void Run(string wast, bool memory64, CompileOptions? options = null)
    {
        using var dir = new TestPaths.TempDir();
        var json = SpecTestRunner.Convert(wast, dir.Path, memory64);
        var result = new SpecTestRunner(options).RunJson(json);
        var failures = result.Failures
            .Where(f => !(memory64 && KnownConflicts.ContainsKey((Path.GetFileName(wast), f.Line))))
            .Select(f => $"{f.File}:{f.Line} {f.Command}: {f.Reason}")
            .ToList();
        Assert.True(result.Passed + result.Skipped > 0, "the file ran no command");
        Assert.True(failures.Count == 0, $"{failures.Count} of {result.Passed + result.Failed} commands failed:\n" + string.Join("\n", failures.Take(50)));
    }
}
