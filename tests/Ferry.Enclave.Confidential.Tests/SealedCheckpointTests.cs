using System.Buffers.Binary;

namespace Ferry.Enclave.Confidential.Tests;

public sealed class SealedCheckpointTests : IDisposable
{
    private const int Chunk = 4096;
    private readonly Fleet fleet = new("a", "b");
    private readonly WorkloadIdentity workload = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);

    public void Dispose() => fleet.Dispose();

    private byte[] Write(byte[] snapshot, CheckpointKeyWrap wrap, ulong epoch = 7, int chunk = Chunk, bool complete = true)
    {
        var file = new MemoryStream();
        using (var w = SealedCheckpoint.Create(file, wrap, workload, epoch, chunk, leaveOpen: true))
        {
            // Written in odd-sized pieces, as a snapshot writer would.
            for (var i = 0; i < snapshot.Length; i += 1000) w.Write(snapshot, i, Math.Min(1000, snapshot.Length - i));
            if (complete) w.Complete();
        }
        return file.ToArray();
    }

    private static byte[] ReadAll(byte[] file, CheckpointKeyWrap wrap, byte[]? measurement = null)
    {
        using var r = SealedCheckpoint.Open(new MemoryStream(file), wrap, measurement ?? Fleet.WorkloadMeasurement);
        var output = new MemoryStream();
        r.CopyTo(output);
        Assert.True(r.IsComplete);
        return output.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(Chunk - 1)]
    [InlineData(Chunk)]
    [InlineData(Chunk + 1)]
    [InlineData(10 * Chunk + 123)]
    public void Round_trips_any_length(int length)
    {
        var snapshot = Bytes.PagesWithSecret(1 + length / 4096).AsSpan(0, length).ToArray();
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var file = Write(snapshot, wrap);
        Assert.Equal(snapshot, ReadAll(file, wrap));
        var header = SealedCheckpoint.ReadHeader(new MemoryStream(file));
        Assert.Equal(workload, header.Identity);
        Assert.Equal(7ul, header.Epoch);
        Assert.Equal(CheckpointWrapKind.Platform, header.WrapKind);
    }

    [Fact]
    public void The_file_does_not_contain_the_secret()
    {
        var snapshot = Bytes.PagesWithSecret(32);
        Assert.NotEqual(-1, Bytes.Find(snapshot, Bytes.Secret));
        var file = Write(snapshot, CheckpointKeyWrap.ToPlatform(fleet.Host("a")));
        Assert.Equal(-1, Bytes.Find(file, Bytes.Secret));
        Assert.Equal(-1, Bytes.Find(file, Bytes.Secret.AsSpan(0, 8)));
    }

    [Fact]
    public void Any_modified_byte_is_refused()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var file = Write(Bytes.PagesWithSecret(2).AsSpan(0, 3 * 1024).ToArray(), wrap, chunk: SealedCheckpoint.MinChunkSize);
        // 3 KiB in 4 KiB chunks: header, then a single final chunk. Every byte of the file, flipped.
        for (var i = 0; i < file.Length; i++)
        {
            var bad = file.ToArray();
            bad[i] ^= 0x04;
            Assert.ThrowsAny<ConfidentialException>(() => ReadAll(bad, wrap));
        }
    }

    [Fact]
    public void Chunks_cannot_be_dropped_reordered_or_cut()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var snapshot = Bytes.PagesWithSecret(4); // 4 full chunks, the last one flagged final
        var file = Write(snapshot, wrap);
        var chunkLength = 5 + Chunk + 16;
        var headerLength = file.Length - 4 * chunkLength;
        byte[] Chunks(params int[] order) => [.. file.AsSpan(0, headerLength), .. order.SelectMany(c => file.AsSpan(headerLength + c * chunkLength, chunkLength).ToArray())];

        Assert.Equal(snapshot, ReadAll(Chunks(0, 1, 2, 3), wrap));
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(Chunks(0, 2, 1, 3), wrap)).Failure);
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(Chunks(0, 1, 3), wrap)).Failure);
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(Chunks(0, 1, 2, 2), wrap)).Failure);
        var cut = Assert.Throws<SealedDataException>(() => ReadAll(Chunks(0, 1, 2), wrap));
        Assert.Equal(SealedDataFailure.Truncated, cut.Failure);
        Assert.Contains("without its final chunk", cut.Message);
        for (var length = headerLength; length < file.Length; length += 997)
        {
            Assert.Equal(SealedDataFailure.Truncated, Assert.Throws<SealedDataException>(() => ReadAll(file.AsSpan(0, length).ToArray(), wrap)).Failure);
        }
        Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => ReadAll([.. file, 0], wrap)).Failure);
    }

    [Fact]
    public void An_unfinished_checkpoint_is_refused_as_truncated()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var file = Write(Bytes.PagesWithSecret(3), wrap, complete: false); // the exporter failed half-way
        Assert.Equal(SealedDataFailure.Truncated, Assert.Throws<SealedDataException>(() => ReadAll(file, wrap)).Failure);
    }

    [Fact]
    public void A_platform_sealed_checkpoint_opens_only_on_its_host_and_for_its_measurement()
    {
        var file = Write(Bytes.PagesWithSecret(2), CheckpointKeyWrap.ToPlatform(fleet.Host("a")));
        Assert.Equal(SealedDataFailure.WrongPlatform, Assert.Throws<SealedDataException>(() => ReadAll(file, CheckpointKeyWrap.ToPlatform(fleet.Host("b")))).Failure);
        Assert.Equal(SealedDataFailure.WrongIdentity, Assert.Throws<SealedDataException>(() => ReadAll(file, CheckpointKeyWrap.ToPlatform(fleet.Host("a")), Fleet.OtherMeasurement)).Failure);
        Assert.Equal(SealedDataFailure.WrongPlatform, Assert.Throws<SealedDataException>(() => ReadAll(file, CheckpointKeyWrap.WithAgreedKey(new byte[32]))).Failure);
    }

    [Fact]
    public void The_header_cannot_be_edited_to_another_epoch_or_identity()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var file = Write(Bytes.PagesWithSecret(2), wrap, epoch: 7);
        var newer = file.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(newer.AsSpan(80), 99); // epoch field
        Assert.Equal(99ul, SealedCheckpoint.ReadHeader(new MemoryStream(newer)).Epoch);
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(newer, wrap)).Failure);
        var otherInstance = file.ToArray();
        otherInstance[70] ^= 1; // instance id
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(otherInstance, wrap)).Failure);
    }

    [Fact]
    public void Chunks_of_another_checkpoint_do_not_fit()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var one = Write(Bytes.PagesWithSecret(1), wrap);
        var two = Write(Bytes.PagesWithSecret(1), wrap);
        var header = one.Length - (5 + Chunk + 16);
        byte[] spliced = [.. one.AsSpan(0, header), .. two.AsSpan(header)];
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => ReadAll(spliced, wrap)).Failure);
    }

    [Fact]
    public void Rewrapping_moves_a_checkpoint_to_a_target_host_without_re_encrypting()
    {
        // Host a writes a platform-sealed checkpoint. To hand it to host b, a's runtime and b's runtime agree on a key
        // in an attested session; a rewraps to that key; b rewraps to its own platform. Chunks are never touched.
        var (s, d) = fleet.Handshake("a", "b");
        var agreedAtA = CheckpointKeyWrap.WithAgreedKey(s.ExportKey("ferry checkpoint"));
        var agreedAtB = CheckpointKeyWrap.WithAgreedKey(d.ExportKey("ferry checkpoint"));
        var snapshot = Bytes.PagesWithSecret(5);
        var atA = Write(snapshot, CheckpointKeyWrap.ToPlatform(fleet.Host("a")));

        var inTransit = new MemoryStream();
        SealedCheckpoint.Rewrap(new MemoryStream(atA), inTransit, CheckpointKeyWrap.ToPlatform(fleet.Host("a")), agreedAtA);
        var atB = new MemoryStream();
        SealedCheckpoint.Rewrap(new MemoryStream(inTransit.ToArray()), atB, agreedAtB, CheckpointKeyWrap.ToPlatform(fleet.Host("b")));

        Assert.Equal(snapshot, ReadAll(atB.ToArray(), CheckpointKeyWrap.ToPlatform(fleet.Host("b"))));
        var body = 5 * (5 + Chunk + 16);
        Assert.Equal(atA.AsSpan(atA.Length - body).ToArray(), atB.ToArray().AsSpan((int)atB.Length - body).ToArray());
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() =>
            ReadAll(inTransit.ToArray(), CheckpointKeyWrap.WithAgreedKey(new byte[32]))).Failure);
        Assert.Equal(-1, Bytes.Find(inTransit.ToArray(), Bytes.Secret));
    }

    [Fact]
    public void Restoring_the_same_checkpoint_twice_is_refused_by_the_epoch_store()
    {
        var tee = fleet.Host("a");
        var store = new EpochStore(tee, fleet.StateDir("a"));
        var file = Write(Bytes.PagesWithSecret(1), CheckpointKeyWrap.ToPlatform(tee), epoch: 5);
        bool Restore()
        {
            var header = SealedCheckpoint.ReadHeader(new MemoryStream(file));
            ReadAll(file, CheckpointKeyWrap.ToPlatform(tee));
            return store.TryAccept(header.Identity, header.Epoch);
        }
        Assert.True(Restore());
        Assert.False(Restore()); // a second copy from the same file (fork), or the same state again (rollback)
    }

    [Fact]
    public void Malformed_headers_are_refused()
    {
        var wrap = CheckpointKeyWrap.ToPlatform(fleet.Host("a"));
        var file = Write([1, 2, 3], wrap);
        Assert.Equal(SealedDataFailure.Truncated, Assert.Throws<SealedDataException>(() => SealedCheckpoint.ReadHeader(new MemoryStream(file.AsSpan(0, 30).ToArray()))).Failure);
        var magic = file.ToArray();
        magic[0] = (byte)'X';
        Assert.Contains("bad magic", Assert.Throws<SealedDataException>(() => SealedCheckpoint.ReadHeader(new MemoryStream(magic))).Message);
        var chunk = file.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(chunk.AsSpan(12), 1);
        Assert.Contains("chunk size", Assert.Throws<SealedDataException>(() => SealedCheckpoint.ReadHeader(new MemoryStream(chunk))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SealedCheckpoint.Create(new MemoryStream(), wrap, workload, 1, chunkSize: 100));
    }
}
