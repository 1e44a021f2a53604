using Ferry.Enclave.Tracking;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tests;

public unsafe class PresentPageMapTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    [Fact]
    public void The_map_starts_missing_for_committed_pages_and_present_beyond()
    {
        using var memory = new LinearMemory(2, 4, false, 4 * 65536);
        using var map = PresentPageMap.ForMemory(memory);
        Assert.Equal(32, map.PageCount);
        Assert.Equal(64, map.MapPages);
        Assert.Equal(32, map.MissingCount);
        Assert.Equal(0, map.Pointer[0]);
        Assert.Equal(0, map.Pointer[31]);
        Assert.Equal(1, map.Pointer[32]);
        Assert.Equal(1, map.Pointer[63]);
        Assert.False(map.IsPresent(5));
        Assert.True(map.IsPresent(40));

        Assert.True(map.MarkPresent(5));
        Assert.False(map.MarkPresent(5));
        Assert.Equal(1, map.Pointer[5]);
        Assert.Equal(31, map.MissingCount);
        var missing = new List<long>();
        Assert.Equal(3, map.GetMissing(missing, 0, 3));
        Assert.Equal([0, 1, 2], missing);
    }

    [Fact]
    public void WaitForPage_returns_when_another_thread_marks_the_page()
    {
        using var map = new PresentPageMap(256);
        using var waiting = new CountdownEvent(2);
        var done = new bool[2];
        // Pages 7 and 71 share a stripe (64 stripes): marking 71 wakes both, and page 7's waiter must wait on.
        var a = new Thread(() =>
        {
            waiting.Signal();
            map.WaitForPage(7, CancellationToken.None);
            done[0] = true;
        });
        var b = new Thread(() =>
        {
            waiting.Signal();
            done[1] = map.WaitForPage(71, Deadline);
        });
        a.Start();
        b.Start();
        Assert.True(waiting.Wait(Deadline));
        map.MarkPresent(71);
        Assert.True(b.Join(Deadline));
        Assert.True(done[1]);
        Assert.False(done[0]);
        Assert.True(a.IsAlive);
        map.MarkPresent(7);
        Assert.True(a.Join(Deadline));
        Assert.True(done[0]);
    }

    [Fact]
    public void WaitForPage_can_be_cancelled_and_times_out()
    {
        using var map = new PresentPageMap(16);
        Assert.False(map.WaitForPage(3, TimeSpan.FromMilliseconds(1)));
        using var cts = new CancellationTokenSource();
        Exception? error = null;
        using var entered = new ManualResetEventSlim(false);
        var t = new Thread(() =>
        {
            try
            {
                entered.Set();
                map.WaitForPage(3, cts.Token);
            }
            catch (OperationCanceledException e)
            {
                error = e;
            }
        });
        t.Start();
        Assert.True(entered.Wait(Deadline));
        cts.Cancel();
        Assert.True(t.Join(Deadline));
        Assert.IsAssignableFrom<OperationCanceledException>(error);
    }

    [Fact]
    public void Many_threads_waiting_on_many_pages_all_wake()
    {
        const int Pages = 512;
        using var map = new PresentPageMap(Pages);
        var threads = new Thread[16];
        var woke = 0;
        for (var t = 0; t < threads.Length; t++)
        {
            var first = t;
            threads[t] = new Thread(() =>
            {
                for (var p = first; p < Pages; p += threads.Length) map.WaitForPage(p, CancellationToken.None);
                Interlocked.Increment(ref woke);
            });
            threads[t].Start();
        }
        for (var p = Pages - 1; p >= 0; p--) map.MarkPresent(p);
        foreach (var t in threads) Assert.True(t.Join(Deadline));
        Assert.Equal(threads.Length, woke);
        Assert.Equal(0, map.MissingCount);
        Assert.True(map.WaitForAll(TimeSpan.Zero));
    }
}
