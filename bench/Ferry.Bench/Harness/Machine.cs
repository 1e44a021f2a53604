using System.Globalization;

namespace Ferry.Bench.Harness;

/// <summary>What the figures were measured on, including how busy the machine was (other jobs share it).</summary>
public static class Machine
{
    /// <summary>The 1, 5 and 15-minute load averages from /proc/loadavg, as printed there.</summary>
    public static string LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]} {parts[1]} {parts[2]}";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    /// <summary>The 1-minute load average, or NaN when unavailable.</summary>
    public static double Load1()
    {
        var first = LoadAverage().Split(' ')[0];
        return double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN;
    }

    public static string Describe() =>
        $"{Environment.ProcessorCount} CPUs, .NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
}
