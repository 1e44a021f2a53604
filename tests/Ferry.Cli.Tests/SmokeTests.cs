namespace Ferry.Cli.Tests;

public class SmokeTests
{
    [Fact]
    public void Placeholder_until_engine_lands() => Assert.True(typeof(SmokeTests).Assembly.GetName().Name == "Ferry.Cli.Tests");
}
