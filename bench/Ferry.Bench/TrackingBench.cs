using System.Diagnostics;
using Ferry.Enclave.Tracking;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Bench;

/// <summary>
/// Dirty-page tracking and post-copy fault service, measured directly with a stopwatch (each operation changes the
/// state it measures, so BenchmarkDotNet's repeated invocations do not fit):
/// `dotnet run -c Release --project bench/Ferry.Bench -- tracking [rounds]`.
/// </summary>
public static unsafe class TrackingBench
{
    private const long GiB = 1L << 30;
    private const int PagesPerGiB = (int)(GiB / 4096);

    public static void Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 21;
        Console.WriteLine($"# {UserfaultfdSupport.Current}");
        Console.WriteLine($"# {Environment.ProcessorCount} CPUs, {rounds} rounds per figure, median (min..max)");
        CollectKernel(rounds);
        CollectCompiler(rounds);
        FaultService();
    }

    private static string Stats(List<double> ms)
    {
        ms.Sort();
        return $"{ms[ms.Count / 2]:F3} ms ({ms[0]:F3}..{ms[^1]:F3})";
    }

    private static int[] RandomPages(int count, int seed)
    {
        var all = Enumerable.Range(0, PagesPerGiB).ToArray();
        new Random(seed).Shuffle(all);
        var chosen = all.AsSpan(0, count).ToArray();
        Array.Sort(chosen);
        return chosen;
    }

    private static void CollectKernel(int rounds)
    {
        using var memory = new LinearMemory(GiB / 65536, GiB / 65536, false, (ulong)GiB);
        // Populate everything first, as a running instance would have.
        for (long o = 0; o < GiB; o += 1 << 28) new Span<byte>(memory.Base + o, 1 << 28).Fill(1);
        using var tracker = new KernelDirtyTracker(memory);
        var sw = Stopwatch.StartNew();
        tracker.Start();
        Console.WriteLine($"kernel  Start (register + write-protect 1 GiB, populated): {sw.Elapsed.TotalMilliseconds:F1} ms");
        var pages = new List<long>(PagesPerGiB);

        foreach (var dirty in new[] { 0, 1_000, 100_000 })
        {
            var chosen = RandomPages(dirty, dirty);
            var collect = new List<double>();
            var write = new List<double>();
            for (var r = -2; r < rounds; r++)
            {
                sw.Restart();
                foreach (var p in chosen) memory.Base[(long)p * 4096 + r + 3] = (byte)r;
                var w = sw.Elapsed.TotalMilliseconds;
                pages.Clear();
                sw.Restart();
                var n = tracker.Collect(pages);
                var c = sw.Elapsed.TotalMilliseconds;
                if (n != dirty) throw new InvalidOperationException($"kernel reported {n} pages, expected {dirty}");
                if (r < 0) continue; // warm-up
                collect.Add(c);
                write.Add(w);
            }
            Console.WriteLine($"kernel  Collect 1 GiB, {dirty,7} dirty pages: {Stats(collect)}");
            if (dirty > 0)
            {
                // The first write to a protected page takes a write-protect fault that the kernel resolves itself.
                var perPage = write.Select(x => x * 1e6 / dirty).ToList();
                perPage.Sort();
                Console.WriteLine($"kernel  first write to a protected page ({dirty} pages): {perPage[perPage.Count / 2]:F0} ns/page");
            }
        }

        // The same writes without tracking, for the fault overhead above.
        tracker.Stop();
        var plain = RandomPages(100_000, 100_000);
        var times = new List<double>();
        for (var r = 0; r < rounds; r++)
        {
            sw.Restart();
            foreach (var p in plain) memory.Base[(long)p * 4096 + r + 3] = (byte)r;
            times.Add(sw.Elapsed.TotalMilliseconds * 1e6 / plain.Length);
        }
        times.Sort();
        Console.WriteLine($"untracked write to a page (100000 pages): {times[times.Count / 2]:F0} ns/page");
    }

    private static void CollectCompiler(int rounds)
    {
        // A 1 GiB memory of a module compiled with dirty tracking; the marks are set directly, as compiled stores would.
        var module = ModuleDecoder.Decode(WasmWithMemory(GiB / 65536));
        var instance = Instance.Instantiate(ModuleCompiler.Compile(module, new CompileOptions { DirtyTracking = true }));
        using var tracker = new CompilerDirtyTracker(instance.State);
        tracker.Start();
        var pages = new List<long>(PagesPerGiB);
        var sw = new Stopwatch();
        foreach (var dirty in new[] { 0, 1_000, 100_000 })
        {
            var chosen = RandomPages(dirty, dirty);
            var collect = new List<double>();
            for (var r = -2; r < rounds; r++)
            {
                foreach (var p in chosen) tracker.Map[p] = 1;
                pages.Clear();
                sw.Restart();
                var n = tracker.Collect(pages);
                var c = sw.Elapsed.TotalMilliseconds;
                if (n != dirty) throw new InvalidOperationException($"compiler reported {n} pages, expected {dirty}");
                if (r >= 0) collect.Add(c);
            }
            Console.WriteLine($"compiler Collect 1 GiB, {dirty,7} dirty pages: {Stats(collect)}");
        }
    }

    /// <summary>A module with one memory of <paramref name="pages"/> Wasm pages (min = max) and nothing else.</summary>
    private static byte[] WasmWithMemory(long pages)
    {
        var limits = new List<byte> { 0x01 };
        Leb(limits, (ulong)pages);
        Leb(limits, (ulong)pages);
        var section = new List<byte> { 0x01 };
        section.AddRange(limits);
        var bytes = new List<byte> { 0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x05 };
        Leb(bytes, (ulong)section.Count);
        bytes.AddRange(section);
        return [.. bytes];

        static void Leb(List<byte> o, ulong v)
        {
            do
            {
                var b = (byte)(v & 0x7F);
                v >>= 7;
                o.Add(v != 0 ? (byte)(b | 0x80) : b);
            } while (v != 0);
        }
    }

    private sealed class MemorySource(LinearMemory memory) : IPageSource
    {
        public bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken)
        {
            new ReadOnlySpan<byte>(memory.Base + pageIndex * 4096, 4096).CopyTo(destination);
            return true;
        }
    }

    private static void FaultService()
    {
        const ulong WasmPages = 1024; // 64 MiB = 16384 4 KiB pages
        using var source = new LinearMemory(WasmPages, WasmPages, false, WasmPages * 65536);
        new Span<byte>(source.Base, (int)source.Size).Fill(7);
        var pageCount = (int)(source.Size / 4096);

        // Faults: one thread touches every page once; each touch blocks until the handler thread has copied it.
        for (var round = 0; round < 2; round++)
        {
            using var destination = new LinearMemory(WasmPages, WasmPages, false, WasmPages * 65536);
            using var server = new MissingPageServer(destination, new MemorySource(source));
            var observed = new long[pageCount];
            var total = Stopwatch.StartNew();
            var reader = new Thread(() =>
            {
                for (var p = 0; p < pageCount; p++)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    _ = Volatile.Read(ref destination.Base[(long)p * 4096]);
                    observed[p] = Stopwatch.GetTimestamp() - t0;
                }
            });
            reader.Start();
            reader.Join();
            total.Stop();
            if (round == 0) continue; // warm-up
            Console.WriteLine($"post-copy faults, 64 MiB in-memory source, 1 reader: {pageCount / total.Elapsed.TotalSeconds:F0} pages/s");
            Console.WriteLine($"  handler service time: {server.GetFaultLatency()}");
            var us = observed.Select(t => t * 1e6 / Stopwatch.Frequency).ToArray();
            Array.Sort(us);
            Console.WriteLine($"  reader-observed fault latency: min {us[0]:F1} µs, median {us[us.Length / 2]:F1} µs, p99 {us[(int)(us.Length * 0.99)]:F1} µs, max {us[^1]:F1} µs");
        }

        // Background push: Install every page from one thread, nothing faults.
        for (var round = 0; round < 2; round++)
        {
            using var destination = new LinearMemory(WasmPages, WasmPages, false, WasmPages * 65536);
            using var server = new MissingPageServer(destination, new MemorySource(source));
            var sw = Stopwatch.StartNew();
            for (var p = 0; p < pageCount; p++) server.Install(p, new ReadOnlySpan<byte>(source.Base + (long)p * 4096, 4096));
            sw.Stop();
            if (round == 0) continue;
            Console.WriteLine($"post-copy Install (background push), 64 MiB: {pageCount / sw.Elapsed.TotalSeconds:F0} pages/s ({sw.Elapsed.TotalMicroseconds / pageCount:F1} µs/page)");
        }
    }
}
