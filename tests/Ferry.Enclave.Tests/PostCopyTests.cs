using Ferry.Enclave.Tracking;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tests;

/// <summary>
/// Runs alone, after the assembly's parallel tests: several of these tests block a thread on a missing page, and a
/// garbage collection started meanwhile by another test class cannot suspend that thread until the page arrives — if
/// the thread that installs it allocates, both wait for ever (the test host hung this way twice in ~35 runs).
/// </summary>
[CollectionDefinition(nameof(PostCopyTests), DisableParallelization = true)]
public sealed class PostCopyCollection;

[Collection(nameof(PostCopyTests))]
public unsafe class PostCopyTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>A source memory with a recognisable pattern (page index and offset in every byte), some pages all zero.</summary>
    private static LinearMemory SourceMemory(ulong wasmPages, Func<long, bool>? zeroPage = null)
    {
        var m = new LinearMemory(wasmPages, wasmPages, false, wasmPages * 65536);
        for (long p = 0; p < (long)(m.Size / 4096); p++)
        {
            if (zeroPage?.Invoke(p) == true) continue;
            var page = new Span<byte>(m.Base + p * 4096, 4096);
            for (var i = 0; i < 4096; i++) page[i] = (byte)(p * 31 + i * 7 + 1);
        }
        return m;
    }

    [Fact]
    public void Discarding_scattered_pending_pages_zeroes_exactly_those_pages_across_batches()
    {
        // 160 Wasm pages = 2,560 OS pages: every third page of the first half, every other page of the second, and a
        // run of 40 at the end pending: 427 + 620 + 1 = 1,048 runs, more than one batch of 1,024 ranges.
        using var m = SourceMemory(160);
        var pages = (long)(m.Size / 4096);
        var pending = new byte[(pages + 7) / 8];
        bool IsPending(long p) => p < 1280 ? p % 3 == 0 : p >= pages - 40 || p % 2 == 0;
        for (long p = 0; p < pages; p++)
        {
            if (IsPending(p)) pending[p >> 3] |= (byte)(1 << (int)(p & 7));
        }
        Migration.KernelPostCopy.DiscardRuns(m, pending);
        for (long p = 0; p < pages; p++)
        {
            var page = new ReadOnlySpan<byte>(m.Base + p * 4096, 4096);
            if (IsPending(p))
            {
                Assert.False(page.ContainsAnyExcept((byte)0), $"pending page {p} still holds data");
            }
            else
            {
                Assert.Equal((byte)(p * 31 + 1), page[0]);
                Assert.Equal((byte)(p * 31 + 4095 * 7 + 1), page[4095]);
            }
        }
    }

    /// <summary>Reads pages from a source memory; optionally holds one page back until released; counts requests.</summary>
    private sealed class MemorySource(LinearMemory memory) : IPageSource
    {
        public readonly ManualResetEventSlim Asked = new(false);
        public readonly ManualResetEventSlim Release = new(true);
        public long HeldPage = -1;
        public int Requests;

        public bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Requests);
            if (pageIndex == HeldPage)
            {
                Asked.Set();
                Release.Wait(cancellationToken);
            }
            var page = new ReadOnlySpan<byte>(memory.Base + pageIndex * 4096, 4096);
            if (!page.ContainsAnyExcept((byte)0)) return false;
            page.CopyTo(destination);
            return true;
        }
    }

    private static bool SamePage(LinearMemory a, LinearMemory b, long page) =>
        new ReadOnlySpan<byte>(a.Base + page * 4096, 4096).SequenceEqual(new ReadOnlySpan<byte>(b.Base + page * 4096, 4096));

    [Fact]
    public void A_reader_blocks_on_a_missing_page_until_the_server_installs_it_from_the_source()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1);
        using var destination = new LinearMemory(1, 1, false, 65536);
        var src = new MemorySource(source) { HeldPage = 5 };
        src.Release.Reset();
        using var server = new MissingPageServer(destination, src);
        Assert.Equal(16, server.PageCount);
        Assert.Equal(16, server.MissingCount);

        var value = -1;
        var reader = new Thread(() => value = destination.Base[5 * 4096 + 100]);
        reader.Start();
        Assert.True(src.Asked.Wait(Deadline), "the reader's access never reached the page source");
        // The source holds page 5 back, so the reader cannot have it yet: it is blocked in the fault.
        Assert.True(reader.IsAlive);
        Assert.False(server.IsPresent(5));
        src.Release.Set();
        Assert.True(reader.Join(Deadline), "the reader was not woken after the page was installed");
        Assert.Equal(source.Base[5 * 4096 + 100], value);
        Assert.True(server.IsPresent(5));
        Assert.True(SamePage(source, destination, 5));
        Assert.Equal(1, server.FaultCount);
        Assert.Equal(15, server.MissingCount);

        // Every other page, touched by one thread in turn, matches the source.
        var all = new Thread(() =>
        {
            for (long p = 0; p < 16; p++) _ = destination.Base[p * 4096 + 4095];
        });
        all.Start();
        Assert.True(all.Join(Deadline));
        for (long p = 0; p < 16; p++) Assert.True(SamePage(source, destination, p), $"page {p} differs");
        Assert.Equal(0, server.MissingCount);
        Assert.Equal(16, server.FaultCount);
        var latency = server.GetFaultLatency();
        Assert.Equal(16, latency.Count);
        Assert.True(latency.Min <= latency.Median && latency.Median <= latency.P99 && latency.P99 <= latency.Max);

        server.Stop();
        destination.Base[0] = 42; // ordinary memory now
        Assert.Equal(42, destination.Base[0]);
    }

    [Fact]
    public void Pages_pushed_in_the_background_are_not_fetched_again()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1, zeroPage: p => p == 2);
        using var destination = new LinearMemory(1, 1, false, 65536);
        var src = new MemorySource(source);
        using var server = new MissingPageServer(destination, src);

        var installed = new List<bool>();
        var pusher = new Thread(() =>
        {
            for (long p = 0; p < 16; p += 2)
            {
                installed.Add(p == 2 ? server.InstallZero(p) : server.Install(p, new ReadOnlySpan<byte>(source.Base + p * 4096, 4096)));
            }
        });
        pusher.Start();
        Assert.True(pusher.Join(Deadline));
        Assert.Equal(Enumerable.Repeat(true, 8), installed);
        Assert.Equal(8, server.InstalledCount);
        Assert.Equal(8, server.MissingCount);
        Assert.False(server.Install(4, new byte[4096]), "an installed page must not be replaced");
        Assert.False(server.InstallZero(4));
        Assert.Equal(0, src.Requests);

        // Reading everything faults only on the pages not pushed; one of them (page 9) is fetched on demand.
        var reader = new Thread(() =>
        {
            for (long p = 0; p < 16; p++) _ = destination.Base[p * 4096];
        });
        reader.Start();
        Assert.True(reader.Join(Deadline));
        Assert.Equal(8, src.Requests);
        Assert.Equal(8, server.FaultCount);
        for (long p = 0; p < 16; p++) Assert.True(SamePage(source, destination, p), $"page {p} differs");
        Assert.False(server.Install(9, new byte[4096]), "a page served on demand is present");
        Assert.Equal(0, server.MissingCount);
        Assert.True(server.Present.WaitForAll(TimeSpan.Zero));
    }

    [Fact]
    public void Zero_pages_from_the_source_are_mapped_as_zero_pages()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1, zeroPage: p => p % 3 == 0);
        using var destination = new LinearMemory(1, 1, false, 65536);
        using var server = new MissingPageServer(destination, new MemorySource(source));
        var reader = new Thread(() =>
        {
            for (long p = 0; p < 16; p++) _ = destination.Base[p * 4096 + 1];
        });
        reader.Start();
        Assert.True(reader.Join(Deadline));
        Assert.Equal(6, server.ZeroPageCount);
        for (long p = 0; p < 16; p++) Assert.True(SamePage(source, destination, p), $"page {p} differs");
        // A zero page can still be written (the kernel replaces the shared zero page on write).
        destination.Base[3 * 4096] = 5;
        Assert.Equal(5, destination.Base[3 * 4096]);
    }

    [Fact]
    public void Pages_committed_by_growth_after_the_switch_over_are_fresh_and_never_fault()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1);
        using var destination = new LinearMemory(1, 3, false, 3 * 65536);
        var src = new MemorySource(source);
        using var server = new MissingPageServer(destination, src);
        Assert.Equal(1, destination.Grow(2));
        Assert.Equal(16, server.PageCount);
        Assert.True(server.IsPresent(16));
        Assert.True(server.IsPresent(47));
        var t = new Thread(() =>
        {
            destination.Base[20 * 4096] = 7;
            _ = destination.Base[40 * 4096];
        });
        t.Start();
        Assert.True(t.Join(Deadline));
        Assert.Equal(0, src.Requests);
        Assert.Equal(7, destination.Base[20 * 4096]);
        Assert.Equal(16, server.MissingCount);
        Assert.Throws<InvalidOperationException>(server.Stop);
    }

    [Fact]
    public void A_destination_already_touched_is_refused()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1);
        using var destination = new LinearMemory(1, 1, false, 65536);
        _ = destination.Base[3 * 4096];
        var e = Assert.Throws<InvalidOperationException>(() => new MissingPageServer(destination, new MemorySource(source)));
        Assert.Contains("already touched", e.Message);
    }

    [Fact]
    public void EnsurePresent_fetches_missing_pages_inside_a_system_call()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(2);
        using var destination = new LinearMemory(2, 2, false, 2 * 65536);
        using var server = new MissingPageServer(destination, new MemorySource(source));
        Assert.True(server.Install(11, new ReadOnlySpan<byte>(source.Base + 11 * 4096, 4096)));
        var t = new Thread(() => server.EnsurePresent(10 * 4096 + 5, 3 * 4096));
        t.Start();
        Assert.True(t.Join(Deadline));
        Assert.Equal(3, server.FaultCount); // pages 10, 12, 13; page 11 was present
        for (long p = 10; p <= 13; p++) Assert.True(server.IsPresent(p));
        for (long p = 10; p <= 13; p++) Assert.True(SamePage(source, destination, p));
    }

    [Fact]
    public void Dispose_releases_a_thread_blocked_on_a_page_the_source_cannot_provide()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1);
        using var destination = new LinearMemory(1, 1, false, 65536);
        var src = new MemorySource(source) { HeldPage = 1 };
        src.Release.Reset();
        var server = new MissingPageServer(destination, src);
        var reader = new Thread(() => _ = destination.Base[4096]);
        reader.Start();
        Assert.True(src.Asked.Wait(Deadline));
        server.Dispose(); // cancels the source's wait, unregisters: the page reads as zero
        Assert.True(reader.Join(Deadline));
        Assert.Equal(0, destination.Base[4096]);
        Assert.Throws<ObjectDisposedException>(() => server.Install(2, new byte[4096]));
    }

    [Fact]
    public void A_failing_source_is_reported_and_the_fault_is_resolved_by_a_later_install()
    {
        Kernel.RequireMissingPages();
        using var source = SourceMemory(1);
        using var destination = new LinearMemory(1, 1, false, 65536);
        using var server = new MissingPageServer(destination, new FailingSource());
        using var failed = new ManualResetEventSlim(false);
        long failedPage = -1;
        server.SourceFailed += (page, e) =>
        {
            failedPage = page;
            failed.Set();
        };
        var value = -1;
        var reader = new Thread(() => value = destination.Base[6 * 4096 + 9]);
        reader.Start();
        Assert.True(failed.Wait(Deadline));
        Assert.Equal(6, failedPage);
        Assert.True(reader.IsAlive);
        Assert.True(server.Install(6, new ReadOnlySpan<byte>(source.Base + 6 * 4096, 4096)));
        Assert.True(reader.Join(Deadline));
        Assert.Equal(source.Base[6 * 4096 + 9], value);
    }

    private sealed class FailingSource : IPageSource
    {
        public bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken) =>
            throw new IOException("connection to the source host lost");
    }

    [Theory]
    [InlineData("interruptible")]
    [InlineData("ensure-present")]
    public void A_garbage_collection_while_a_thread_waits_for_a_missing_page_completes(string mode)
    {
        Kernel.RequireMissingPages();
        // In a child process: if the collection could not suspend the waiting thread, the whole runtime would hang.
        var (exit, output) = ChildProcess.Run(TimeSpan.FromSeconds(40), "gc-probe", mode);
        Assert.True(exit == 0, $"gc-probe {mode} failed (exit {exit}): {output}");
        Assert.Contains("GC.Collect finished", output);
    }
}
