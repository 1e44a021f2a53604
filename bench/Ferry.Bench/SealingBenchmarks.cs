using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Ferry.Enclave.Confidential;

namespace Ferry.Bench;

/// <summary>
/// Sealing and opening 1 GiB of 4 KiB pages with the migration record sealer (AES-256-GCM), against a plain copy of
/// the same pages into a send buffer (what an unsealed migration does). Records are written to one reused buffer per
/// stream, as a socket sender would, so the figures are crypto and copy costs, not allocation.
/// Run: dotnet run -c Release --project bench/Ferry.Bench -- --filter '*SealingBenchmarks*'
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 7)]
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class SealingBenchmarks
{
    private const int PageSize = 4096;
    private const long Total = 1L << 30;
    private const int PageCount = (int)(Total / PageSize);

    private byte[] memory = [];
    private byte[][] sealedRecords = [];
    private SoftwareTeeBackend? tee;
    private TrustStore trust = TrustStore.Empty;
    private string stateDir = "";
    private MigrationSession? source, destination;

    /// <summary>Pages per record.</summary>
    [Params(1, 16, 64)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        memory = GC.AllocateUninitializedArray<byte>((int)Total);
        RandomNumberGenerator.Fill(memory.AsSpan(0, 1 << 20));
        for (var off = 1 << 20; off < memory.Length; off += 1 << 20) memory.AsSpan(0, 1 << 20).CopyTo(memory.AsSpan(off));
        stateDir = Path.Combine(Path.GetTempPath(), "ferry-bench-" + Guid.NewGuid().ToString("N"));
        tee = SoftwareTeeBackend.OpenOrCreate(stateDir);
        trust = TrustStore.Create([tee.TrustEntry("bench")]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        tee?.Dispose();
        Directory.Delete(stateDir, recursive: true);
    }

    /// <summary>A fresh session pair for each iteration (sequence numbers and stream ids start over).</summary>
    /// <summary>Nothing to prepare; declared so the baseline runs in the same job (one invocation per iteration) as the rest.</summary>
    [IterationSetup(Target = nameof(CopyOneStream))]
    public void NothingToPrepare()
    {
    }

    [IterationSetup(Targets = [nameof(SealOneStream), nameof(SealTwoStreams)])]
    public void NewSession()
    {
        var measurement = SHA256.HashData("bench"u8);
        var id = Guid.NewGuid();
        source = MigrationSession.CreateSource(tee!, trust, measurement, id);
        destination = MigrationSession.CreateDestination(tee!, trust, measurement, id);
        source.ReceiveConfirmation(destination.ReceiveSourceQuote(source.ReceiveDestinationQuote(destination.Respond(source.Start()))));
    }

    [IterationSetup(Target = nameof(OpenOneStream))]
    public void NewSessionAndSealedInput()
    {
        NewSession();
        using var sealer = source!.CreateSealer(1);
        sealedRecords = new byte[PageCount / Batch][];
        for (var b = 0; b < sealedRecords.Length; b++)
        {
            sealedRecords[b] = sealer.Seal(SealedRecordKind.Pages, 0, (ulong)b, memory.AsSpan(b * Batch * PageSize, Batch * PageSize));
        }
    }

    [Benchmark(Baseline = true, Description = "plain: copy pages into a send buffer, 1 stream")]
    public long CopyOneStream()
    {
        var buffer = new byte[SealedRecord.SealedLength(Batch * PageSize)];
        long sent = 0;
        for (var p = 0; p < PageCount; p += Batch)
        {
            memory.AsSpan(p * PageSize, Batch * PageSize).CopyTo(buffer.AsSpan(SealedRecord.HeaderSize));
            sent += buffer.Length;
        }
        return sent;
    }

    [Benchmark(Description = "sealed: seal pages into a send buffer, 1 stream")]
    public long SealOneStream()
    {
        using var sealer = source!.CreateSealer(1);
        return SealRange(sealer, 0, PageCount);
    }

    [Benchmark(Description = "sealed: seal pages, 2 streams on 2 threads")]
    public long SealTwoStreams()
    {
        var sealers = new[] { source!.CreateSealer(1), source.CreateSealer(2) };
        var sent = new long[2];
        Parallel.For(0, 2, s => sent[s] = SealRange(sealers[s], s * PageCount / 2, PageCount / 2));
        foreach (var s in sealers) s.Dispose();
        return sent[0] + sent[1];
    }

    [Benchmark(Description = "sealed: open pages in place, 1 stream")]
    public long OpenOneStream()
    {
        using var opener = destination!.CreateOpener(1);
        long received = 0;
        foreach (var r in sealedRecords) received += opener.OpenInPlace(r).PayloadLength;
        return received;
    }

    private long SealRange(RecordSealer sealer, int firstPage, int pages)
    {
        var buffer = new byte[SealedRecord.SealedLength(Batch * PageSize)];
        long sent = 0;
        for (var p = firstPage; p < firstPage + pages; p += Batch)
        {
            sent += sealer.Seal(SealedRecordKind.Pages, 0, (ulong)p, memory.AsSpan(p * PageSize, Batch * PageSize), buffer);
        }
        return sent;
    }
}
