namespace Ferry.Bench.Harness;

/// <summary>
/// Repeated measurements of one quantity. The machine is shared (2 cores, other jobs), so figures are reported
/// as best (least disturbed) and median, never as a mean that one descheduled run can drag.
/// </summary>
public sealed class Samples
{
    private readonly List<double> values = [];

    public int Count => values.Count;

    public void Add(double value) => values.Add(value);

    public double Min
    {
        get
        {
            Require();
            var m = values[0];
            foreach (var v in values) m = Math.Min(m, v);
            return m;
        }
    }

    public double Max
    {
        get
        {
            Require();
            var m = values[0];
            foreach (var v in values) m = Math.Max(m, v);
            return m;
        }
    }

    /// <summary>The middle value (the mean of the two middle ones for an even count).</summary>
    public double Median
    {
        get
        {
            Require();
            var sorted = values.ToArray();
            Array.Sort(sorted);
            var n = sorted.Length;
            return n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
        }
    }

    public IReadOnlyList<double> Values => values;

    private void Require()
    {
        if (values.Count == 0) throw new InvalidOperationException("no samples");
    }
}

/// <summary>Wall-clock and CPU time of the same repetitions, in ms.</summary>
public sealed class Timings
{
    public Samples Wall { get; } = new();
    public Samples Cpu { get; } = new();

    public void Add(double wallMs, double cpuMs)
    {
        Wall.Add(wallMs);
        Cpu.Add(cpuMs);
    }
}
