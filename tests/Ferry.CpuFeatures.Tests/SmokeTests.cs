namespace Ferry.CpuFeatures.Tests;

public class SmokeTests
{
    [Fact]
    public void Placeholder_until_engine_lands() => Assert.True(typeof(SmokeTests).Assembly.GetName().Name == "Ferry.CpuFeatures.Tests");
}
