namespace Ferry.CpuFeatures.Features;

/// <summary>The x86-64 psABI micro-architecture levels. <see cref="None"/> marks a feature outside all levels.</summary>
public enum IsaLevel
{
    None = 0,
    V1 = 1,
    V2 = 2,
    V3 = 3,
    V4 = 4,
}

public static class IsaLevelNames
{
    /// <summary>The psABI spelling, as glibc-hwcaps directories and `readelf -n` use it.</summary>
    public static string ToPsAbiName(this IsaLevel level) => level switch
    {
        IsaLevel.V1 => "x86-64-v1",
        IsaLevel.V2 => "x86-64-v2",
        IsaLevel.V3 => "x86-64-v3",
        IsaLevel.V4 => "x86-64-v4",
        _ => "none",
    };

    public static bool TryParse(string? text, out IsaLevel level)
    {
        level = text switch
        {
            "x86-64-v1" or "x86-64-baseline" or "v1" => IsaLevel.V1,
            "x86-64-v2" or "v2" => IsaLevel.V2,
            "x86-64-v3" or "v3" => IsaLevel.V3,
            "x86-64-v4" or "v4" => IsaLevel.V4,
            _ => IsaLevel.None,
        };
        return level != IsaLevel.None;
    }
}
