using Ferry.Cli.Runtime;

namespace Ferry.Cli.Tests;

/// <summary>The in-process migration warm-up: its guest is what its source says, and its migrations succeed.</summary>
public sealed class MigrationWarmupTests
{
    [Fact]
    public void The_warm_up_guest_is_what_its_wat_source_assembles_to()
    {
        var dir = Directory.CreateTempSubdirectory("ferry-warmup-test-");
        try
        {
            var wasm = Path.Combine(dir.FullName, "warmup.wasm");
            var r = Cli.Run("wat2wasm", [Path.Combine(Cli.RepoRoot, "src", "Ferry.Cli", "Runtime", "migration-warmup.wat"), "-o", wasm], timeoutSeconds: 60);
            Assert.True(r.ExitCode == 0, r.Err);
            Assert.Equal(File.ReadAllBytes(wasm), MigrationWarmup.GuestModule.ToArray());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_warm_up_migrates_its_guest_without_failing()
    {
        // Pre-copy and post-copy with compiled tracking, and with the kernel's where this host allows it; a failure
        // would be harmless to a real migration but would leave its critical path cold.
        var took = await MigrationWarmup.Start().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Null(MigrationWarmup.Failure);
        Assert.True(took > TimeSpan.Zero);
    }
}
