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

    /// <summary>The shares the throttle steps through, as QEMU's 20 % start and 10 % steps, but coarser: few rounds remain.</summary>
    private static readonly double[] Steps = [0.3, 0.5, 0.7, 0.9];

    private readonly EnclaveSource enclave;
    private readonly TimeSpan period;
    private readonly CancellationTokenSource stop = new();
    private Task? loop;
    private int step = -1;
    private long frozenTicks;

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

    private async Task CycleAsync()
    {
        try
        {
            await CycleCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            // No pause will come any more: whoever waits for one goes on without.
            Interlocked.Exchange(ref pauseWanted, null)?.TrySetResult(null);
        }
    }

    private async Task CycleCoreAsync()
    {
        var token = stop.Token;
        while (true)
        {
            var share = Share;
            try
            {
                await Task.Delay(period * (1 - share), token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            var pausedAt = Stopwatch.GetTimestamp();
            FrozenGuest frozen;
            try
            {
                // Never abandoned once asked for: a freeze that completed after we stopped waiting would leave the
                // guest frozen with nobody to unfreeze it.
                frozen = await enclave.FreezeAsync().ConfigureAwait(false);
            }
            catch (GuestNotRunningException)
            {
                return; // the program ended; the migration notices on its own
            }
            if (Interlocked.Exchange(ref pauseWanted, null) is { } wanted)
            {
                var pause = new Pause(frozen);
                wanted.TrySetResult(pause);
                bool kept;
                try
                {
                    kept = await pause.Decision.WaitAsync(token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping. A Keep just before the stop still counts: the decision's continuation runs
                    // asynchronously, so the cancellation can win this wait although the decision came first.
                    // Without a decision the guest runs again below.
                    kept = pause.Decision.IsCompletedSuccessfully && pause.Decision.Result;
                }
                if (kept)
                {
                    Interlocked.Add(ref frozenTicks, Stopwatch.GetTimestamp() - pausedAt);
                    return; // the guest stays frozen: the migration's freeze now
                }
            }
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
                enclave.Unfreeze();
                Interlocked.Add(ref frozenTicks, Stopwatch.GetTimestamp() - pausedAt);
            }
            if (token.IsCancellationRequested) return;
        }
    }

    /// <summary>True once cycles run (the first <see cref="Raise"/>) and until they stop.</summary>
    public bool IsActive => loop is { IsCompleted: false };

    private TaskCompletionSource<Pause?>? pauseWanted;

    /// <summary>
    /// Waits for the throttle's next pause and returns it with the guest frozen, before the pause's wait begins; the
    /// caller must <see cref="Pause.Keep"/> or <see cref="Pause.Release"/> it at once. Null when no pause will come
    /// (the throttle is not active or stopped, or the guest ended). This is how pre-copy ends without a burst: it
    /// collects the last dirty set while the guest is frozen anyway, and if that set fits the downtime, keeps the
    /// pause as the migration's freeze — the last round then holds exactly that set. Stopping the throttle and
    /// then freezing let the guest run at full speed in between (for as long as the freeze took to be scheduled
    /// on a loaded host), and a throttled btree wrote 300–1,100 pages into the last round there.
    /// </summary>
    public Task<Pause?> NextPauseAsync(CancellationToken ct)
    {
        var wanted = new TaskCompletionSource<Pause?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref pauseWanted, wanted)?.TrySetResult(null);
        if (!IsActive) Interlocked.Exchange(ref pauseWanted, null)?.TrySetResult(null);
        return wanted.Task.WaitAsync(ct);
    }

    /// <summary>A throttle pause handed to the migration: the guest is frozen until the pause is released.</summary>
    public sealed class Pause(FrozenGuest frozen)
    {
        private readonly TaskCompletionSource<bool> decision = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal Task<bool> Decision => decision.Task;

        /// <summary>Ends the throttle with the guest still frozen and returns that freeze (the migration's own now).</summary>
        public FrozenGuest Keep()
        {
            if (!decision.TrySetResult(true)) throw new InvalidOperationException("the pause was already decided");
            return frozen;
        }

        /// <summary>Lets the pause run its course (the guest runs again at its end).</summary>
        public void Release() => decision.TrySetResult(false);
    }

    /// <summary>Stops the cycles; when this returns the guest runs (unless it ended, or a pause was kept).</summary>
    public async ValueTask DisposeAsync()
    {
        if (disposed) return;
        disposed = true;
        await stop.CancelAsync().ConfigureAwait(false);
        if (loop is not null) await loop.ConfigureAwait(false);
        stop.Dispose();
    }

    private bool disposed;
}
