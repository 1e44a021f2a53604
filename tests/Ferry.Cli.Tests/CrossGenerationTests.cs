namespace Ferry.Cli.Tests;

/// <summary>
/// TGVM's cross-generation test, for Ferry's ISA-neutral snapshots: a program checkpointed on this host (AVX2
/// available) finishes correctly under qemu-x86_64 -cpu Nehalem (no AVX at all, as the .NET runtime there sees it),
/// and the reverse. The snapshot metadata records what each side's runtime saw.
/// </summary>
public sealed class CrossGenerationTests
{
    private static readonly string[] Args = ["--mem", "16M", "--ops", "300000"];

    private static string Qemu => "/usr/bin/qemu-x86_64";


    private static Cli.Result UnderNehalem(params string[] ferryArgs) =>
        Cli.Run(Qemu, ["-cpu", "Nehalem", DotnetHost(), Cli.FerryDll, .. ferryArgs], timeoutSeconds: 600);

    /// <summary>The real dotnet host binary (qemu-user needs an ELF, not a symlink chain or script).</summary>
    private static string DotnetHost()
    {
        var psi = Cli.Run("bash", ["-c", "readlink -f \"$(command -v dotnet)\""]);
        return psi.Out.Trim();
    }

    private static string Expected()
    {
        var native = Cli.Run(Cli.Workload("btree", "native"), Args);
        Assert.Equal(0, native.ExitCode);
        return native.Out;
    }

    [Fact]
    public void Checkpoint_here_restore_on_Nehalem()
    {
        var expected = Expected();
        using var dir = new TempDir();
        var snap = dir["here.snap"];
        Cli.Result? first = null;
        foreach (var delay in new[] { "150ms", "50ms", "15ms" })
        {
            first = Cli.Ferry(["run", "--snapshot", snap, "--checkpoint-after", delay, Cli.Workload("btree"), .. Args]);
            Assert.True(first.ExitCode == 0, first.Err);
            if (first.Out.EndsWith($"checkpointed {snap}\n", StringComparison.Ordinal)) break;
            Assert.Equal(expected, first.Out);
        }
        Assert.EndsWith($"checkpointed {snap}\n", first!.Out);
        var meta = Cli.Ferry(["snapshot", "inspect", snap]).Out;
        var second = UnderNehalem("restore", snap);
        Assert.True(second.ExitCode == 0, second.Err);
        Assert.Equal(expected, first.Out[..^$"checkpointed {snap}\n".Length] + second.Out);
        Assert.Contains("cpu      x64", meta);
    }

    [Fact]
    public void Checkpoint_on_Nehalem_restore_here()
    {
        var expected = Expected();
        using var dir = new TempDir();
        var snap = dir["nehalem.snap"];
        // How fast the runtime gets through the program under emulation varies with the machine's load: if it
        // finishes before the checkpoint, try again with a shorter delay (the output must be complete either way).
        Cli.Result? first = null;
        foreach (var delay in new[] { "2s", "800ms", "300ms", "100ms", "30ms" })
        {
            first = UnderNehalem(["run", "--snapshot", snap, "--checkpoint-after", delay, Cli.Workload("btree"), .. Args]);
            Assert.True(first.ExitCode == 0, first.Err);
            if (first.Out.EndsWith($"checkpointed {snap}\n", StringComparison.Ordinal)) break;
            Assert.Equal(expected, first.Out);
        }
        Assert.EndsWith($"checkpointed {snap}\n", first!.Out);
        var meta = Cli.Ferry(["snapshot", "inspect", snap]).Out;
        Assert.Contains("avx=0 avx2=0", meta); // the runtime under qemu really ran without AVX
        var second = Cli.Ferry(["restore", snap]);
        Assert.True(second.ExitCode == 0, second.Err);
        Assert.Equal(expected, first.Out[..^$"checkpointed {snap}\n".Length] + second.Out);
    }
}
