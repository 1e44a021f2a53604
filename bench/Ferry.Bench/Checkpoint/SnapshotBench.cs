using System.Diagnostics;
using System.Runtime.InteropServices;
using Ferry.Bench.Harness;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// Checkpoint and restore throughput of a frozen 1 GiB instance to a local file, against copying the same 1 GiB of
/// memory to a file and back with a FileStream in the same run (issue 9 item 7: 1 GiB checkpointed in &lt; 1 s).
/// Two memory images: all 1 GiB incompressible data, and half data, half zero pages (which snapshots omit).
/// </summary>
public static unsafe class SnapshotBench
{
    private const double GB = 1e9;

    /// <summary>Timings of one operation, Ferry's snapshot and the raw copy side by side.</summary>
    private sealed class Pair
    {
        public Samples Ferry { get; } = new();
        public Samples Raw { get; } = new();
    }

    public static void Run(Report report, bool quick, int reps)
    {
        var churn = new ChurnModule();
        var dir = Path.Combine(Repo.BenchBuild, "checkpoint-scratch");
        var components = new ResultTable("Passes over the 1 GiB memory a snapshot write makes, timed alone (same run, same repetitions)",
            ["image", "pass", "best ms", "median ms", "GB/s of memory"]);
        Directory.CreateDirectory(dir);
        var table = new ResultTable($"Snapshot of a frozen 1 GiB instance to a local file (ext4 on virtio disk) vs a raw FileStream copy of the same memory; {reps} interleaved repetitions",
            ["image", "operation", "Ferry best ms", "Ferry median ms", "Ferry GB/s", "raw 1 GiB best ms", "raw median ms", "raw GB/s", "ratio (best)", "ratio (median)"]);
        try
        {
            Variant(report, table, components, churn, dir, "1 GiB data", ChurnModule.MemoryBytes, quick, reps);
            Variant(report, table, components, churn, dir, "512 MiB data + 512 MiB zero", ChurnModule.MemoryBytes / 2, quick, reps);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        table.Note("GB/s = bytes written to / read from the file per second (10^9). Ferry's file is the whole snapshot (module,");
        table.Note("state, frames, non-zero pages, XXH64 checksum); raw = the 1 GiB of linear memory as is, 1 MiB FileStream buffer.");
        table.Note("write = SnapshotWriter.Write into the page cache; +fsync = the same followed by fsync (FileStream.Flush(true)).");
        table.Note("restore = SnapshotReader + SnapshotRestorer.Restore (header, new instance, memory copy, checksum check);");
        table.Note("raw read = FileStream.Read of the file into a fresh 1 GiB buffer. warm: file in the page cache; cold: evicted");
        table.Note("first with posix_fadvise(DONTNEED) (the hypervisor's host cache may still hold it).");
        report.Add(table);
        components.Note("SnapshotWriter reads every page once to skip zero pages, then hashes and writes the stored pages;");
        components.Note("the raw copy only writes. GB/s here = 1 GiB of memory / time, whatever the file size.");
        report.Add(components);
    }

    private static void Variant(Report report, ResultTable table, ResultTable components, ChurnModule churn, string dir, string image, long filled, bool quick, int reps)
    {
        var iterations = quick ? 2_000_000 : 20_000_000;
        Report.Progress($"snapshot {image}: reference run");
        var (expected, referenceTime) = churn.Reference(filled, iterations);
        var instance = churn.Filled(filled);
        var (frames, latency) = churn.RunAndFreeze(instance, filled, iterations, referenceTime * 0.3);
        var snapshot = Path.Combine(dir, "churn.snapshot");
        var raw = Path.Combine(dir, "churn.raw");

        var write = new Pair();
        var fsync = new Pair();
        var scan = new Samples();
        var hash = new Samples();
        SnapshotStats? stats = null;
        for (var r = 0; r < reps; r++)
        {
            Report.Progress($"snapshot {image}: write {r + 1}/{reps}");
            stats = WriteSnapshot(instance, frames, snapshot, write.Ferry, fsync.Ferry);
            WriteRaw(instance.Memory!, raw, write.Raw, fsync.Raw);
            scan.Add(MemoryPasses.ZeroScan(instance.Memory!));
            hash.Add(MemoryPasses.Hash(instance.Memory!));
        }
        components.Row(image, "zero-page scan (every 4 KiB page)", Cell.Num(scan.Min, "F0"), Cell.Num(scan.Median, "F0"), Cell.Num(ChurnModule.MemoryBytes / GB / (scan.Min / 1000), "F2"));
        components.Row(image, "XXH64 of the memory (1 MiB appends)", Cell.Num(hash.Min, "F0"), Cell.Num(hash.Median, "F0"), Cell.Num(ChurnModule.MemoryBytes / GB / (hash.Min / 1000), "F2"));
        components.Row(image, "raw FileStream write (page cache)", Cell.Num(write.Raw.Min, "F0"), Cell.Num(write.Raw.Median, "F0"), Cell.Num(ChurnModule.MemoryBytes / GB / (write.Raw.Min / 1000), "F2"));
        components.Row(image, "SnapshotWriter.Write (page cache)", Cell.Num(write.Ferry.Min, "F0"), Cell.Num(write.Ferry.Median, "F0"), Cell.Num(ChurnModule.MemoryBytes / GB / (write.Ferry.Min / 1000), "F2"));

        var warm = new Pair();
        var cold = new Pair();
        RestoredInstance? last = null;
        for (var r = 0; r < reps; r++)
        {
            Report.Progress($"snapshot {image}: restore {r + 1}/{reps}");
            Discard(last);
            last = Restore(churn, snapshot, warm.Ferry);
            ReadRaw(raw, warm.Raw);
            FileIo.Evict(snapshot);
            FileIo.Evict(raw);
            Discard(last);
            last = Restore(churn, snapshot, cold.Ferry);
            ReadRaw(raw, cold.Raw);
        }

        // Both the original (unfrozen) and the last restored copy must finish exactly as an uninterrupted run.
        Report.Progress($"snapshot {image}: resuming both copies");
        var original = ChurnModule.Resume(instance, frames);
        var restored = ChurnModule.Resume(last!.Instance, last.Frames);
        if (original != expected || restored != expected)
        {
            throw new InvalidOperationException($"{image}: resumed results {original:x16} (original), {restored:x16} (restored), expected {expected:x16}");
        }
        Discard(last);
        instance.Memory!.Dispose();

        var fileBytes = stats!.Bytes;
        Row(table, image, "write (page cache)", write, fileBytes);
        Row(table, image, "write + fsync", Sum(write, fsync), fileBytes);
        Row(table, image, "restore / read, warm", warm, fileBytes);
        Row(table, image, "restore / read, cold", cold, fileBytes);
        table.Note($"{image}: snapshot {fileBytes / (double)(1 << 20):F1} MiB ({stats.StoredPages} pages stored, {stats.ZeroPages} zero pages omitted); freeze of the churn loop took {latency.TotalMilliseconds:F3} ms; both the original and the restored instance resumed to the uninterrupted run's result {expected:x16}.");
        report.Note($"snapshot {image}: done, load average {Machine.LoadAverage()}");
    }

    private static SnapshotStats WriteSnapshot(Instance instance, IReadOnlyList<FrameRecord> frames, string path, Samples write, Samples fsync)
    {
        File.Delete(path);
        var sw = Stopwatch.StartNew();
        using var file = FileIo.Create(path);
        var stats = SnapshotWriter.Write(file, instance, frames, [], new Dictionary<string, string>(), "churn.wasm", includeModule: true);
        write.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        file.Flush(flushToDisk: true);
        fsync.Add(sw.Elapsed.TotalMilliseconds);
        return stats;
    }

    private static void WriteRaw(LinearMemory memory, string path, Samples write, Samples fsync)
    {
        File.Delete(path);
        var sw = Stopwatch.StartNew();
        using var file = FileIo.Create(path);
        FileIo.WriteRaw(file, memory.Base, (long)memory.Size);
        file.Flush(flushToDisk: false);
        write.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        file.Flush(flushToDisk: true);
        fsync.Add(sw.Elapsed.TotalMilliseconds);
    }

    private static RestoredInstance Restore(ChurnModule churn, string path, Samples times)
    {
        var sw = Stopwatch.StartNew();
        using var file = FileIo.OpenRead(path);
        var restored = SnapshotRestorer.Restore(new SnapshotReader(file), churn.Compiled, null);
        times.Add(sw.Elapsed.TotalMilliseconds);
        return restored;
    }

    private static void ReadRaw(string path, Samples times)
    {
        var length = new FileInfo(path).Length;
        var sw = Stopwatch.StartNew();
        // A fresh allocation (glibc maps it): its pages fault in on first write, as a restored instance's memory does.
        var buffer = (byte*)NativeMemory.Alloc((nuint)length);
        try
        {
            using var file = FileIo.OpenRead(path);
            FileIo.ReadRaw(file, buffer, length);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    private static void Discard(RestoredInstance? restored) => restored?.Instance.Memory?.Dispose();

    /// <summary>Per-repetition sums (write + fsync of the same repetition).</summary>
    private static Pair Sum(Pair a, Pair b)
    {
        var p = new Pair();
        for (var i = 0; i < a.Ferry.Count; i++)
        {
            p.Ferry.Add(a.Ferry.Values[i] + b.Ferry.Values[i]);
            p.Raw.Add(a.Raw.Values[i] + b.Raw.Values[i]);
        }
        return p;
    }

    private static void Row(ResultTable table, string image, string operation, Pair p, long fileBytes)
    {
        table.Row(image, operation, Cell.Num(p.Ferry.Min, "F0"), Cell.Num(p.Ferry.Median, "F0"), Cell.Num(fileBytes / GB / (p.Ferry.Min / 1000), "F2"),
            Cell.Num(p.Raw.Min, "F0"), Cell.Num(p.Raw.Median, "F0"), Cell.Num(ChurnModule.MemoryBytes / GB / (p.Raw.Min / 1000), "F2"),
            Cell.Num(p.Ferry.Min / p.Raw.Min, "F2"), Cell.Num(p.Ferry.Median / p.Raw.Median, "F2"));
    }
}
