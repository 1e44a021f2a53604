using System.Globalization;

namespace Ferry.Bench.Harness;

/// <summary>How long a thread has run on a CPU and waited in the run queue for one, in ns (Linux schedstat).</summary>
public readonly record struct SchedTimes(long OnCpuNs, long WaitingNs)
{
    public static SchedTimes operator -(SchedTimes a, SchedTimes b) => new(a.OnCpuNs - b.OnCpuNs, a.WaitingNs - b.WaitingNs);
}

/// <summary>
/// Reads /proc/self/task/TID/schedstat for another thread of this process. A freeze latency measured on a machine
/// where other jobs keep both cores busy is mostly the guest thread waiting for a core; these counters split the
/// latency into the guest's own work and that wait.
/// </summary>
public static class ThreadSchedStat
{
    /// <summary>The id of a live thread of this process with the given name (as set by Thread.Name), or null.</summary>
    public static int? Find(string name)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n') == name)
                {
                    return int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // The thread ended while we looked.
            }
        }
        return null;
    }

    public static SchedTimes? Read(int tid)
    {
        try
        {
            var fields = File.ReadAllText($"/proc/self/task/{tid}/schedstat").Split(' ');
            return new SchedTimes(long.Parse(fields[0], CultureInfo.InvariantCulture), long.Parse(fields[1], CultureInfo.InvariantCulture));
        }
        catch (IOException)
        {
            return null;
        }
    }
}
