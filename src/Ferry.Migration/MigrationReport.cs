using System.Text.Json.Serialization;
using Ferry.Migration.Protocol;

namespace Ferry.Migration;

/// <summary>One round of page transfer.</summary>
public sealed record RoundReport(int Round, long Pages, long Bytes, double Milliseconds, bool GuestRunning);

/// <summary>
/// Where the downtime went, as seen by the source runtime (milliseconds from the guest's freeze; the last step ends
/// at the destination's own start time). Collect: the last dirty set read from the tracker; FinalPages: the pages
/// sent while frozen; State: frames and the rest sealed and sent; Ready: until the destination said it holds
/// everything (it waits for the last batches and checks them); Commit: until the guest started there.
/// </summary>
public sealed record DowntimeBreakdown(double CollectMs, double FinalPagesMs, double StateMs, double ReadyMs, double CommitMs);

/// <summary>Latency distribution of post-copy faults (pages the destination had to ask for).</summary>
public sealed record FaultLatency(long Count, double MinMs, double MedianMs, double P99Ms, double MaxMs);

/// <summary>Everything measured about one migration (reported by `ferry migrate --json` and the agents).</summary>
public sealed record MigrationReport
{
    public required string MigrationId { get; init; }
    [JsonConverter(typeof(JsonStringEnumConverter<Strategy>))]
    public required Strategy Strategy { get; init; }
    [JsonConverter(typeof(JsonStringEnumConverter<TrackingMethod>))]
    public required TrackingMethod Tracking { get; init; }
    public required bool Succeeded { get; init; }
    public string? Error { get; init; }
    public ulong MemoryBytes { get; init; }
    public double TotalMs { get; init; }
    /// <summary>Last guest instruction on the source to first on the destination, from the runtimes' clocks.</summary>
    public double DowntimeMs { get; init; }
    /// <summary>The downtime in its steps (null if the migration did not get that far).</summary>
    public DowntimeBreakdown? DowntimeParts { get; init; }
    /// <summary>From the freeze request to the guest stopping at a safe point.</summary>
    public double FreezeLatencyMs { get; init; }
    public long BytesSent { get; init; }
    public long PagesSent { get; init; }
    /// <summary>Pages sent more than once (dirtied again after a round).</summary>
    public long ResentPages { get; init; }
    public int Rounds { get; init; }
    /// <summary>Pre-copy auto-converge: the highest share of time the guest was kept frozen during the rounds (0: never throttled).</summary>
    public double AutoConvergeShare { get; init; }
    /// <summary>Time the guest spent frozen by auto-converge while the rounds ran, and by rechecks at a freeze it was resumed from (not downtime: it ran in between).</summary>
    public double ThrottledMs { get; init; }
    /// <summary>Pre-copy: how often the guest was resumed right after a freeze because what it wrote just before no longer fitted the target.</summary>
    public int FreezeRechecks { get; init; }
    /// <summary>Pre-copy: the final freeze began as a pause of auto-converge (the guest did not run between the stop decision and the freeze; freeze latency 0).</summary>
    public bool FreezeKeptThrottlePause { get; init; }
    public double BandwidthMBps { get; init; }
    public IReadOnlyList<RoundReport> RoundDetails { get; init; } = [];
    public long PostCopyFaults { get; init; }
    public FaultLatency? FaultLatency { get; init; }
    public double PostCopyMs { get; init; }
    /// <summary>Something an operator should know about a successful migration (e.g. it finished on the destination's word).</summary>
    public string? Note { get; init; }
}

/// <summary>Progress of a running migration (for progress bars and logs).</summary>
public sealed record MigrationProgress(string Phase, int Round, long PagesSent, long PagesPlanned, long BytesSent);

/// <summary>The migration failed; <see cref="SourceResumed"/> tells whether the guest continues on the source.</summary>
public sealed class MigrationFailedException(string message, bool sourceResumed, Exception? inner = null)
    : Exception(message, inner)
{
    public bool SourceResumed { get; } = sourceResumed;
}
