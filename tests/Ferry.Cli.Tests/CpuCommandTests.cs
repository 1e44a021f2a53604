namespace Ferry.Cli.Tests;

/// <summary>`ferry cpu` exit codes and output channels, run through the real command tree.</summary>
public sealed class CpuCommandTests
{
    private static int Run(params string[] args) => CommandCatalog.BuildRoot().Parse(args).Invoke();

    [Fact]
    public void Scan_without_paths_is_a_usage_error() => Assert.Equal(ExitCodes.Usage, Run("cpu", "scan"));

    [Fact]
    public void Scan_fails_only_when_every_input_failed()
    {
        var text = Path.Combine(Path.GetTempPath(), $"ferry-cli-{Guid.NewGuid():N}.txt");
        File.WriteAllText(text, "not a program");
        try
        {
            Assert.Equal(ExitCodes.Failure, Run("cpu", "scan", "--no-deps", text));
            Assert.Equal(ExitCodes.Ok, Run("cpu", "scan", "--no-deps", text, "/lib/x86_64-linux-gnu/libm.so.6"));
        }
        finally
        {
            File.Delete(text);
        }
    }

    [Fact]
    public void Model_and_compat_reject_unreadable_inputs_as_usage_errors()
    {
        Assert.Equal(ExitCodes.Usage, Run("cpu", "model", "--needs", "/no/such/scan.json"));
        Assert.Equal(ExitCodes.Usage, Run("cpu", "compat", "--needs", "/no/such/scan.json", "--host", "qemu:Haswell"));
        Assert.Equal(ExitCodes.Usage, Run("cpu", "compat"));
    }

    [Fact]
    public void With_json_no_human_text_reaches_console_out()
    {
        // JSON is written to the process's stdout stream directly; everything for people goes to stderr.
        var original = Console.Out;
        using var capture = new StringWriter();
        int code;
        try
        {
            Console.SetOut(capture);
            code = Run("cpu", "host", "--json");
        }
        finally
        {
            Console.SetOut(original);
        }
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Equal("", capture.ToString());
    }

    [Fact]
    public void Model_list_names_the_data_source() => Assert.Equal(ExitCodes.Ok, Run("cpu", "model", "--list"));
}
