using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Workloads.Tests;

[Collection(WorkloadCollection.Name)]
public sealed partial class MicrobenchTests(WorkloadBuild build)
{
    private static readonly string[] FerryAbi = ["arg_count", "arg_get", "write", "clock_ns", "sleep_ns", "exit"];

    [Fact]
    public void Wasm64_module_has_a_memory64_memory_and_imports_only_the_ferry_abi()
    {
        var module = Path.Combine(build.Out, "wasm64", "microbench64.wasm");
        var dump = WorkloadBuild.Run("wasm-objdump", ["-x", module], TimeSpan.FromSeconds(30));
        Assert.True(dump.ExitCode == 0, dump.ToString());
        Assert.Matches(MemoryLine(), dump.Stdout);
        var imports = ImportLine().Matches(dump.Stdout).Select(m => (Module: m.Groups[1].Value, Name: m.Groups[2].Value)).ToList();
        Assert.NotEmpty(imports);
        Assert.All(imports, i => Assert.True(i.Module == "ferry" && FerryAbi.Contains(i.Name), $"unexpected import {i.Module}.{i.Name}"));
        Assert.Contains("- func[", dump.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"-> ""_start""", dump.Stdout);
        Assert.Matches(@"memory\[0\] -> ""memory""", dump.Stdout);
    }

    /// <summary>The freestanding wasm64 build, run under node with the ferry ABI in JS, matches native.</summary>
    [Theory]
    [InlineData("16M", "300000", "1")]
    [InlineData("5M", "1000", "77")]
    public void Wasm64_build_matches_native(string mem, string ops, string seed)
    {
        string[] args = ["--mem", mem, "--ops", ops, "--seed", seed];
        var native = Runner.Native.Run(build, "microbench", args);
        var wasm64 = Runner.NodeWasm64.Run(build, "microbench64", args);
        Assert.True(native.ExitCode == 0, native.ToString());
        Assert.True(wasm64.ExitCode == 0, wasm64.ToString());
        Assert.Equal(native.FinalLine, wasm64.FinalLine);
    }

    /// <summary>The same module under Ferry's engine and its implementation of the ferry ABI.</summary>
    [Theory]
    [InlineData("16M", "300000", "1")]
    [InlineData("5M", "1000", "77")]
    public void Wasm64_build_under_ferry_matches_native(string mem, string ops, string seed)
    {
        string[] args = ["--mem", mem, "--ops", ops, "--seed", seed];
        var native = Runner.Native.Run(build, "microbench", args);
        var ferry = Runner.FerryWasm64.Run(build, "microbench64", args);
        Assert.True(native.ExitCode == 0, native.ToString());
        Assert.True(ferry.ExitCode == 0, ferry.ToString());
        Assert.Equal(native.FinalLine, ferry.FinalLine);
    }

    /// <summary>
    /// Beyond wasm32's reach: a 4.2 GiB footprint in a memory64 instance (node 20 caps memory64 at 4 GiB, so
    /// only native and Ferry run this one).
    /// </summary>
    [Fact]
    public void Wasm64_footprint_above_4_GiB_under_ferry_matches_native()
    {
        string[] args = ["--mem", "4200M", "--ops", "100000", "--seed", "5", "--progress", "0"];
        var native = Runner.Native.Run(build, "microbench", args, timeoutSeconds: 300);
        var ferry = Runner.FerryWasm64.Run(build, "microbench64", args, timeoutSeconds: 300);
        Assert.True(native.ExitCode == 0, native.ToString());
        Assert.True(ferry.ExitCode == 0, ferry.ToString());
        Assert.Equal(native.FinalLine, ferry.FinalLine);
    }

    [Fact]
    public void Wasm64_build_rejects_bad_flags_under_ferry()
    {
        var r = Runner.FerryWasm64.Run(build, "microbench64", ["--mem", "banana"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--mem", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Wasm64_build_rejects_bad_flags()
    {
        var r = Runner.NodeWasm64.Run(build, "microbench64", ["--mem", "banana"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--mem", r.Stderr, StringComparison.Ordinal);
        var u = Runner.NodeWasm64.Run(build, "microbench64", ["--bogus"]);
        Assert.Equal(2, u.ExitCode);
        Assert.Contains("unknown option '--bogus'", u.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// --rate paces the writes without changing them: a 1 s run at 2000 pages/s does about 2000
    /// operations, and replaying its op count without a rate gives the same checksum.
    /// </summary>
    [Fact]
    public void Rate_limit_paces_writes_without_changing_the_result()
    {
        var paced = Runner.Native.Run(build, "microbench", ["--mem", "16M", "--rate", "2000", "--seconds", "1", "--progress", "0"]);
        Assert.True(paced.ExitCode == 0, paced.ToString());
        Assert.InRange(paced.Ops, 1800UL, 2400UL);
        var replay = Runner.Native.Run(build, "microbench", ["--mem", "16M", "--ops", paced.Ops.ToString(CultureInfo.InvariantCulture)]);
        Assert.Equal(paced.FinalLine, replay.FinalLine);
    }

    /// <summary>
    /// --measure-dirty counts distinct written 4 KiB pages with userfaultfd write-protection and
    /// PAGEMAP_SCAN. At 3000 writes/s into 65536 pages the expected distinct count per second is
    /// 65536 * (1 - e^(-3000/65536)) ~ 2932; the meter must land near it.
    /// </summary>
    [Fact]
    public void Dirty_page_meter_counts_the_pages_written()
    {
        var r = Runner.Native.Run(build, "microbench",
            ["--mem", "256M", "--rate", "3000", "--seconds", "2.5", "--progress", "0", "--measure-dirty"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var m = DirtySummary().Match(r.Stderr);
        Assert.True(m.Success, r.Stderr);
        var mean = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(mean, 2500, 3300);
    }

    [GeneratedRegex(@"memory\[0\] pages: initial=\d+ i64")]
    private static partial Regex MemoryLine();

    [GeneratedRegex(@"<- (\w+)\.(\w+)")]
    private static partial Regex ImportLine();

    [GeneratedRegex(@"mean (\d+) pages/s")]
    private static partial Regex DirtySummary();
}
