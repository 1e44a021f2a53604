using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration.Strategies;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Migration.Tests;

public sealed class GuestThrottleTests
{
    /// <summary>A guest storing to its memory for far longer than a test runs (each test freezes it before disposing).</summary>
    private static GuestProgram StartSpinner()
    {
        var program = GuestProgram.Create(Wat.Load(Wat.ToWasm(Programs.Spinner(int.MaxValue))), new GateEnvironment(open: true),
            CompileOptions.Default, InstanceOptions.Default);
        program.Start();
        return program;
    }

    /// <summary>
    /// Pre-copy's stop keeps a pause of auto-converge as the freeze: stopped with keepFrozen during a pause, the
    /// throttle leaves the guest frozen, so the migration's own freeze completes at once (no request, no latency)
    /// and the guest has not run in between. Pauses are 180 ms of every 200 ms; a stop that comes after the pause
    /// ended (a very slow machine) is tried again with a new throttle.
    /// </summary>
    [Fact]
    public async Task A_pause_in_progress_can_be_kept_as_the_freeze()
    {
        using var program = StartSpinner();
        var enclave = new EnclaveSource(program, new PlainRecordProtector(), 1);
        try
        {
            var held = false;
            for (var attempt = 0; attempt < 20 && !held; attempt++)
            {
                var throttle = new GuestThrottle(enclave, TimeSpan.FromMilliseconds(200));
                throttle.RaiseTo(0.9);
                await throttle.NextPause.WaitAsync(TimeSpan.FromSeconds(30));
                held = await throttle.StopAsync(keepFrozen: true);
                Assert.True(throttle.Frozen > TimeSpan.Zero);
                if (!held) continue;
                var freeze = enclave.FreezeAsync();
                Assert.True(freeze.IsCompleted, "the kept pause is a freeze: nothing to wait for");
                Assert.Equal(TimeSpan.Zero, (await freeze).FreezeLatency);
                Assert.False(await throttle.StopAsync(keepFrozen: true)); // stopped once; the freeze is the caller's now
                enclave.Unfreeze();
            }
            Assert.True(held, "no stop came during a pause in 20 tries");
            Assert.False(program.Completion.IsCompleted);
        }
        finally
        {
            await enclave.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30)); // frozen, so disposing retires it
        }
    }

    /// <summary>Without keepFrozen (every use but pre-copy's stop) the guest runs when StopAsync returns.</summary>
    [Fact]
    public async Task Stopping_without_keeping_the_pause_lets_the_guest_run()
    {
        using var program = StartSpinner();
        var enclave = new EnclaveSource(program, new PlainRecordProtector(), 1);
        try
        {
            var throttle = new GuestThrottle(enclave, TimeSpan.FromMilliseconds(200));
            throttle.RaiseTo(0.9);
            await throttle.NextPause.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(await throttle.StopAsync(keepFrozen: false));
            // A freeze of a running guest waits for its next safe point (and the unwinding of its frames) and
            // reports how long that took; one of a guest still frozen completes at once with no latency.
            var freeze = await enclave.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(freeze.FreezeLatency > TimeSpan.Zero, "the guest was still frozen");
            enclave.Unfreeze();
        }
        finally
        {
            await enclave.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }
}
