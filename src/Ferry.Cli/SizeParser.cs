using System.Globalization;

namespace Ferry.Cli;

/// <summary>Parses sizes such as 512, 64K, 16M, 3.5G, 1T (binary units).</summary>
public static class SizeParser
{
    public static bool TryParse(string text, out ulong bytes)
    {
        bytes = 0;
        var s = text.Trim();
        if (s.Length == 0) return false;
        ulong unit = 1;
        var last = char.ToUpperInvariant(s[^1]);
        if (last == 'B' && s.Length > 1)
        {
            s = s[..^1];
            last = char.ToUpperInvariant(s[^1]);
        }
        switch (last)
        {
            case 'K': unit = 1UL << 10; break;
            case 'M': unit = 1UL << 20; break;
            case 'G': unit = 1UL << 30; break;
            case 'T': unit = 1UL << 40; break;
        }
        if (unit != 1) s = s[..^1];
        if (!decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value < 0) return false;
        var total = value * unit;
        if (total > ulong.MaxValue) return false;
        bytes = (ulong)decimal.Floor(total);
        return true;
    }
}
