using System.Diagnostics;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;

namespace Ferry.Migration.Strategies;

/// <summary>
/// Auto-converge for pre-copy. A guest that dirties pages about as fast as they can be sent never lets the rounds
/// shrink, so the last one — sent while the guest is down — stays large. The throttle keeps the guest frozen for a
/// share of every period (<see cref="DefaultPeriod"/>; freeze at a safe point, wait, unfreeze), as QEMU's auto-converge takes CPU
/// time from vCPUs; the source raises the share after each round that did not shrink the dirty set enough. The
/// guest only runs slower meanwhile: its state is untouched, and a freeze is what every migration does anyway.
/// </summary>
internal sealed class GuestThrottle : IAsyncDisposable
{
    /// <summary>The default run-then-pause cycle: short enough to spread the pauses evenly, long next to a freeze (~0.1 ms).</summary>
    public static readonly TimeSpan DefaultPeriod = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The shares the throttle steps through, as QEMU's 20 % start and 10 % steps, but coarser: few rounds remain.
    /// The last, 99 % as QEMU's maximum, is for a guest that rewrites a large working set even in the 5 ms it runs
    /// of every 50 at 90 % (pagerank at 1 GiB: every one of its 23,833 rank pages in every round): in 1 ms it writes
    /// few enough pages for the rounds to shrink, so its pre-copy need not end by freezing a full round.
    /// </summary>
    private static readonly double[] Steps = [0.3, 0.5, 0.7, 0.9, 0.99];

    /// <summary>The shortest run between two pauses (a 1 % share of 50 ms is below the timers' resolution).</summary>
    private static readonly TimeSpan MinimumRun = TimeSpan.FromMilliseconds(1);

    private readonly EnclaveSource enclave;
    private readonly TimeSpan period;
    private readonly CancellationTokenSource stop = new();
    private Task? loop;
    private int step = -1;
    private long frozenTicks;
    // Set by StopAsync(keepFrozen: true) before it cancels the cycles: a pause in progress is then not ended.
    private volatile bool keepFrozen;
    private bool heldFrozen;
    private TaskCompletionSource nextPause = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public GuestThrottle(EnclaveSource enclave, TimeSpan period)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero);
        this.enclave = enclave;
        this.period = period;
    }

    /// <summary>The share of time the guest is kept frozen now (0: not throttled); it only rises, so it is also the highest.</summary>
    public double Share => Volatile.Read(ref step) is var s && s >= 0 ? Steps[s] : 0;

    public bool CanRaise => Volatile.Read(ref step) < Steps.Length - 1;

    /// <summary>Time the guest spent frozen by the throttle.</summary>
    public TimeSpan Frozen => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref frozenTicks));

    /// <summary>One step up (starting the cycles on the first call).</summary>
    public void Raise()
    {
        if (!CanRaise) return;
        Volatile.Write(ref step, step + 1);
        loop ??= Task.Run(CycleAsync);
    }

    /// <summary>Completes when the throttle next holds the guest frozen (for tests: the pause may be over by then).</summary>
    internal Task NextPause => Volatile.Read(ref nextPause).Task;

    /// <summary>Raises step by step until the share is at least <paramref name="share"/> (or the highest).</summary>
    public void RaiseTo(double share)
    {
        while (CanRaise && Share < share) Raise();
    }

    private async Task CycleAsync()
    {
        var token = stop.Token;
        while (true)
        {
            var share = Share;
            try
            {
                var run = period * (1 - share);
                await Task.Delay(run < MinimumRun ? MinimumRun : run, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var pausedAt = Stopwatch.GetTimestamp();
            try
            {
                // Never abandoned once asked for: a freeze that completed after we stopped waiting would leave the
                // guest frozen with nobody to unfreeze it.
                await enclave.FreezeAsync().ConfigureAwait(false);
            }
            catch (GuestNotRunningException)
            {
                return; // the program ended; the migration notices on its own
            }
            Interlocked.Exchange(ref nextPause, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            try
            {
                await Task.Delay(period * share, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping: unfreeze at once.
            }
            finally
            {
                Interlocked.Add(ref frozenTicks, Stopwatch.GetTimestamp() - pausedAt);
                if (token.IsCancellationRequested && keepFrozen) heldFrozen = true;
                else enclave.Unfreeze();
            }
            if (token.IsCancellationRequested) return;
        }
    }

    /// <summary>
    /// Stops the cycles. With <paramref name="keepFrozen"/>, a pause in progress is not ended: the guest stays
    /// frozen for the caller, who is about to freeze it anyway (pre-copy's stop) — unfreezing it only to freeze it
    /// again lets it run, unthrottled, between the stop rule's last collection and the freeze, and whatever it
    /// writes then lands in the downtime. Returns true if the guest was left frozen (the caller then owns the
    /// freeze: <see cref="EnclaveSource.FreezeAsync"/> completes at once, <see cref="EnclaveSource.Unfreeze"/>
    /// ends it); false if it runs (or ended).
    /// </summary>
    public async ValueTask<bool> StopAsync(bool keepFrozen)
    {
        if (disposed) return false;
        disposed = true;
        this.keepFrozen = keepFrozen;
        await stop.CancelAsync().ConfigureAwait(false);
        if (loop is not null) await loop.ConfigureAwait(false);
        stop.Dispose();
        return heldFrozen;
    }

    /// <summary>Stops the cycles; when this returns the guest runs (unless it ended).</summary>
    public async ValueTask DisposeAsync() => await StopAsync(keepFrozen: false).ConfigureAwait(false);

    private bool disposed;
}
