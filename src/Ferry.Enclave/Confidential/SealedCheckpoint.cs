using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>How a sealed checkpoint's content key is protected. In the file header: append only.</summary>
public enum CheckpointWrapKind : ushort
{
    /// <summary>Sealed to this host's platform key: only this host can open the checkpoint.</summary>
    Platform = 1,
    /// <summary>Encrypted under a key agreed with a target runtime (e.g. <see cref="MigrationSession.ExportKey"/>).</summary>
    AgreedKey = 2,
}

/// <summary>
/// Protects a checkpoint's random content key. Rewrapping (<see cref="SealedCheckpoint.Rewrap"/>) moves a checkpoint from
/// one protection to another by rewriting only the header: the chunks stay as they are.
/// </summary>
public abstract class CheckpointKeyWrap
{
    private protected CheckpointKeyWrap() { }

    public abstract CheckpointWrapKind Kind { get; }

    internal abstract byte[] Wrap(byte[] contentKey, byte[] aad);
    internal abstract byte[] Unwrap(ReadOnlySpan<byte> wrapped, byte[] aad);

    /// <summary>Seal the content key to this platform (<see cref="ITeeBackend.SealToPlatform"/>).</summary>
    public static CheckpointKeyWrap ToPlatform(ITeeBackend tee) => new PlatformWrap(tee ?? throw new ArgumentNullException(nameof(tee)));

    /// <summary>Encrypt the content key under a 32-byte key both runtimes hold (AES-256-GCM, random nonce).</summary>
    public static CheckpointKeyWrap WithAgreedKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != 32) throw new ArgumentException("an agreed checkpoint key is 32 bytes", nameof(key));
        return new AgreedWrap(key.ToArray());
    }

    private sealed class PlatformWrap(ITeeBackend tee) : CheckpointKeyWrap
    {
        public override CheckpointWrapKind Kind => CheckpointWrapKind.Platform;
        internal override byte[] Wrap(byte[] contentKey, byte[] aad) => tee.SealToPlatform(contentKey, aad);
        internal override byte[] Unwrap(ReadOnlySpan<byte> wrapped, byte[] aad) => tee.UnsealFromPlatform(wrapped, aad);
    }

    private sealed class AgreedWrap(byte[] key) : CheckpointKeyWrap
    {
        public override CheckpointWrapKind Kind => CheckpointWrapKind.AgreedKey;

        internal override byte[] Wrap(byte[] contentKey, byte[] aad)
        {
            var blob = new byte[12 + contentKey.Length + 16];
            RandomNumberGenerator.Fill(blob.AsSpan(0, 12));
            using var gcm = new AesGcm(key, 16);
            gcm.Encrypt(blob.AsSpan(0, 12), contentKey, blob.AsSpan(12, contentKey.Length), blob.AsSpan(12 + contentKey.Length), aad);
            return blob;
        }

        internal override byte[] Unwrap(ReadOnlySpan<byte> wrapped, byte[] aad)
        {
            if (wrapped.Length != 12 + 32 + 16) throw new SealedDataException(SealedDataFailure.Malformed, $"wrapped checkpoint key of {wrapped.Length} bytes");
            var plain = new byte[32];
            using var gcm = new AesGcm(key, 16);
            try
            {
                gcm.Decrypt(wrapped[..12], wrapped.Slice(12, 32), wrapped[44..], plain, aad);
            }
            catch (AuthenticationTagMismatchException)
            {
                throw new SealedDataException(SealedDataFailure.Tampered, "the checkpoint key does not unwrap with the agreed key: another key, or a modified header");
            }
            return plain;
        }
    }
}

/// <summary>The clear-text header of a sealed checkpoint: whose state it is, its epoch, and how its key is wrapped.</summary>
public sealed class CheckpointHeader
{
    public required WorkloadIdentity Identity { get; init; }
    /// <summary>The migration epoch sealed with the state: restore only if the epoch store accepts it.</summary>
    public required ulong Epoch { get; init; }
    public required Guid FileId { get; init; }
    public required int ChunkSize { get; init; }
    public required CheckpointWrapKind WrapKind { get; init; }
    internal byte[] Fixed { get; init; } = [];
    internal byte[] WrappedKey { get; init; } = [];
}

/// <summary>
/// Sealed checkpoint files for confidential workloads (docs/confidential.md, "Sealed checkpoints"):
/// <code>
///   header:  "FERRYSCP" ‖ u16 version ‖ u16 0 ‖ u32 chunk size ‖ file id (16) ‖ measurement (32) ‖ instance id (16) ‖ u64 epoch
///            ‖ u16 wrap kind ‖ u16 n ‖ wrapped content key (n)
///   chunks:  u8 flags (1 = final) ‖ u32 length ‖ ciphertext (length ≤ chunk size) ‖ 16-byte tag
/// </code>
/// Each chunk is AES-256-GCM under a random per-file content key, nonce = u64 chunk index ‖ u32 flags, associated
/// data = the fixed header ‖ index ‖ flags ‖ length. Chunks therefore cannot be modified, reordered, moved between
/// files or dropped; the authenticated final flag makes truncation at a chunk boundary detectable.
/// </summary>
public static class SealedCheckpoint
{
    public const ushort Version = 1;
    public const int DefaultChunkSize = 1 << 20;
    public const int MinChunkSize = 4096;
    public const int MaxChunkSize = 16 << 20;
    internal const int FixedSize = 8 + 2 + 2 + 4 + 16 + WorkloadIdentity.EncodedSize + 8;
    internal const int ChunkHeaderSize = 5;
    internal const int TagSize = 16;
    internal static ReadOnlySpan<byte> Magic => "FERRYSCP"u8;

    /// <summary>Bytes <see cref="IsSealed"/> needs from the start of a file.</summary>
    public const int MagicLength = 8;

    /// <summary>Does a file starting with <paramref name="start"/> claim to be a sealed checkpoint ("FERRYSCP")? Nothing is verified.</summary>
    public static bool IsSealed(ReadOnlySpan<byte> start) => start.StartsWith(Magic);

    /// <summary>A writer that seals everything written to it into <paramref name="output"/>; call <see cref="SealedCheckpointWriter.Complete"/> at the end.</summary>
    public static SealedCheckpointWriter Create(Stream output, CheckpointKeyWrap wrap, WorkloadIdentity identity, ulong epoch, int chunkSize = DefaultChunkSize, bool leaveOpen = false) =>
        new(output, wrap, identity, epoch, chunkSize, leaveOpen);

    /// <summary>Reads the clear-text header only (no key needed): identity and epoch, e.g. to check the epoch store first.</summary>
    public static CheckpointHeader ReadHeader(Stream input) => ParseHeader(input);

    /// <summary>
    /// A reader that authenticates and decrypts the checkpoint as it is read. Refuses a checkpoint of another
    /// measurement. The plaintext must not be acted on until the reader returned end of stream: only then is the
    /// final chunk verified (truncation). Errors are <see cref="SealedDataException"/>.
    /// </summary>
    public static SealedCheckpointReader Open(Stream input, CheckpointKeyWrap wrap, ReadOnlySpan<byte> expectedMeasurement, bool leaveOpen = false)
    {
        var header = ParseHeader(input);
        if (!CryptographicOperations.FixedTimeEquals(header.Identity.Measurement, expectedMeasurement))
        {
            throw new SealedDataException(SealedDataFailure.WrongIdentity,
                $"checkpoint of measurement {Measurement.Short(header.Identity.Measurement)}…, this runtime is {Measurement.Short(expectedMeasurement)}…");
        }
        if (header.WrapKind != wrap.Kind)
        {
            throw new SealedDataException(SealedDataFailure.WrongPlatform, $"checkpoint key is wrapped as {header.WrapKind}, not {wrap.Kind}");
        }
        var key = wrap.Unwrap(header.WrappedKey, KeyAad(header.Fixed));
        return new SealedCheckpointReader(input, header, key, leaveOpen);
    }

    /// <summary>Copies a checkpoint re-protecting its content key with <paramref name="to"/>; chunks are copied unchanged.</summary>
    public static void Rewrap(Stream input, Stream output, CheckpointKeyWrap from, CheckpointKeyWrap to)
    {
        var header = ParseHeader(input);
        if (header.WrapKind != from.Kind) throw new SealedDataException(SealedDataFailure.WrongPlatform, $"checkpoint key is wrapped as {header.WrapKind}, not {from.Kind}");
        var aad = KeyAad(header.Fixed);
        var key = from.Unwrap(header.WrappedKey, aad);
        try
        {
            WriteHeader(output, header.Fixed, to.Kind, to.Wrap(key, aad));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
        input.CopyTo(output);
    }

    internal static byte[] KeyAad(byte[] fixedHeader) => [.. "FERRY-CHECKPOINT-KEY-V1"u8, .. fixedHeader];

    internal static byte[] BuildFixed(int chunkSize, Guid fileId, WorkloadIdentity identity, ulong epoch)
    {
        var w = new WireWriter(FixedSize);
        w.Bytes(Magic);
        w.U16(Version);
        w.U16(0);
        w.U32((uint)chunkSize);
        w.Bytes(fileId.ToByteArray());
        w.Bytes(identity.Encode());
        w.U64(epoch);
        return w.ToArray();
    }

    internal static void WriteHeader(Stream output, byte[] fixedHeader, CheckpointWrapKind kind, byte[] wrapped)
    {
        var w = new WireWriter(FixedSize + 4 + wrapped.Length);
        w.Bytes(fixedHeader);
        w.U16((ushort)kind);
        w.Blob16(wrapped);
        output.Write(w.Written);
    }

    private static CheckpointHeader ParseHeader(Stream input)
    {
        var fixedHeader = new byte[FixedSize];
        ReadExactly(input, fixedHeader, "header");
        try
        {
            var r = new WireReader(fixedHeader);
            if (!r.Bytes(8, "magic").SequenceEqual(Magic)) throw new WireFormatException("not a Ferry sealed checkpoint (bad magic)");
            var version = r.U16("version");
            if (version != Version) throw new WireFormatException($"sealed checkpoint version {version}; this runtime reads {Version}");
            if (r.U16("reserved") != 0) throw new WireFormatException("reserved header field is not zero");
            var chunk = r.U32("chunk size");
            if (chunk is < MinChunkSize or > MaxChunkSize) throw new WireFormatException($"chunk size {chunk} outside {MinChunkSize}..{MaxChunkSize}");
            var fileId = new Guid(r.Bytes(16, "file id"));
            var identity = WorkloadIdentity.Decode(r.Bytes(WorkloadIdentity.EncodedSize, "identity"));
            var epoch = r.U64("epoch");
            Span<byte> wrapHeader = stackalloc byte[4];
            ReadExactly(input, wrapHeader, "key wrap header");
            var kind = (CheckpointWrapKind)BinaryPrimitives.ReadUInt16LittleEndian(wrapHeader);
            if (kind is not (CheckpointWrapKind.Platform or CheckpointWrapKind.AgreedKey)) throw new WireFormatException($"unknown key wrap kind {(ushort)kind}");
            var n = BinaryPrimitives.ReadUInt16LittleEndian(wrapHeader[2..]);
            if (n > 1024) throw new WireFormatException($"wrapped key of {n} bytes");
            var wrapped = new byte[n];
            ReadExactly(input, wrapped, "wrapped key");
            return new CheckpointHeader
            {
                Identity = identity,
                Epoch = epoch,
                FileId = fileId,
                ChunkSize = (int)chunk,
                WrapKind = kind,
                Fixed = fixedHeader,
                WrappedKey = wrapped,
            };
        }
        catch (WireFormatException e)
        {
            throw new SealedDataException(SealedDataFailure.Malformed, e.Message);
        }
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes; a short read is truncation.</summary>
    internal static void ReadExactly(Stream input, Span<byte> buffer, string what)
    {
        var got = input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (got < buffer.Length) throw new SealedDataException(SealedDataFailure.Truncated, $"the checkpoint ends inside its {what} ({got} of {buffer.Length} bytes)");
    }

    internal static void ChunkNonce(Span<byte> nonce, ulong index, byte flags)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(nonce, index);
        BinaryPrimitives.WriteUInt32LittleEndian(nonce[8..], flags);
    }

    internal static byte[] ChunkAad(byte[] fixedHeader, ulong index, byte flags, int length)
    {
        var aad = new byte[26 + FixedSize + 13];
        "FERRY-CHECKPOINT-CHUNK-V1"u8.CopyTo(aad);
        fixedHeader.CopyTo(aad, 26);
        BinaryPrimitives.WriteUInt64LittleEndian(aad.AsSpan(26 + FixedSize), index);
        aad[26 + FixedSize + 8] = flags;
        BinaryPrimitives.WriteUInt32LittleEndian(aad.AsSpan(26 + FixedSize + 9), (uint)length);
        return aad;
    }
}

/// <summary>
/// Write-only stream that seals a checkpoint (see <see cref="SealedCheckpoint"/>). <see cref="Complete"/> writes the final
/// chunk; disposing without it leaves a file that every reader refuses as truncated, so an export that failed half-way
/// can never be mistaken for a whole checkpoint.
/// </summary>
public sealed class SealedCheckpointWriter : Stream
{
    private readonly Stream output;
    private readonly bool leaveOpen;
    private readonly AesGcm gcm;
    private readonly byte[] fixedHeader;
    private readonly byte[] chunk;
    private readonly byte[] sealedChunk;
    private int filled;
    private ulong index;
    private bool completed, disposed;

    internal SealedCheckpointWriter(Stream output, CheckpointKeyWrap wrap, WorkloadIdentity identity, ulong epoch, int chunkSize, bool leaveOpen)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(wrap);
        ArgumentNullException.ThrowIfNull(identity);
        if (chunkSize is < SealedCheckpoint.MinChunkSize or > SealedCheckpoint.MaxChunkSize) throw new ArgumentOutOfRangeException(nameof(chunkSize));
        this.output = output;
        this.leaveOpen = leaveOpen;
        FileId = Guid.NewGuid();
        fixedHeader = SealedCheckpoint.BuildFixed(chunkSize, FileId, identity, epoch);
        var key = RandomNumberGenerator.GetBytes(32);
        try
        {
            gcm = new AesGcm(key, SealedCheckpoint.TagSize);
            SealedCheckpoint.WriteHeader(output, fixedHeader, wrap.Kind, wrap.Wrap(key, SealedCheckpoint.KeyAad(fixedHeader)));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
        chunk = new byte[chunkSize];
        sealedChunk = new byte[SealedCheckpoint.ChunkHeaderSize + chunkSize + SealedCheckpoint.TagSize];
    }

    public Guid FileId { get; }
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !completed && !disposed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (completed) throw new InvalidOperationException("the sealed checkpoint is complete");
        while (!buffer.IsEmpty)
        {
            if (filled == chunk.Length) EmitChunk(final: false);
            var n = Math.Min(buffer.Length, chunk.Length - filled);
            buffer[..n].CopyTo(chunk.AsSpan(filled));
            filled += n;
            buffer = buffer[n..];
        }
    }

    /// <summary>Seals the remaining bytes as the final chunk and flushes. Without it the checkpoint is truncated.</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (completed) return;
        EmitChunk(final: true);
        completed = true;
        output.Flush();
    }

    private void EmitChunk(bool final)
    {
        var flags = final ? (byte)1 : (byte)0;
        sealedChunk[0] = flags;
        BinaryPrimitives.WriteUInt32LittleEndian(sealedChunk.AsSpan(1), (uint)filled);
        Span<byte> nonce = stackalloc byte[12];
        SealedCheckpoint.ChunkNonce(nonce, index, flags);
        gcm.Encrypt(nonce, chunk.AsSpan(0, filled), sealedChunk.AsSpan(SealedCheckpoint.ChunkHeaderSize, filled),
            sealedChunk.AsSpan(SealedCheckpoint.ChunkHeaderSize + filled, SealedCheckpoint.TagSize), SealedCheckpoint.ChunkAad(fixedHeader, index, flags, filled));
        output.Write(sealedChunk, 0, SealedCheckpoint.ChunkHeaderSize + filled + SealedCheckpoint.TagSize);
        CryptographicOperations.ZeroMemory(chunk.AsSpan(0, filled));
        filled = 0;
        index++;
    }

    public override void Flush() => output.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            gcm.Dispose();
            CryptographicOperations.ZeroMemory(chunk);
            if (!leaveOpen) output.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>Read-only stream over a sealed checkpoint; every chunk is authenticated before its bytes are returned.</summary>
public sealed class SealedCheckpointReader : Stream
{
    private readonly Stream input;
    private readonly bool leaveOpen;
    private readonly AesGcm gcm;
    private readonly byte[] plain;
    private readonly byte[] cipher;
    private int available, position;
    private ulong index;
    private bool sawFinal, atEnd, disposed;

    internal SealedCheckpointReader(Stream input, CheckpointHeader header, byte[] key, bool leaveOpen)
    {
        this.input = input;
        this.leaveOpen = leaveOpen;
        Header = header;
        gcm = new AesGcm(key, SealedCheckpoint.TagSize);
        CryptographicOperations.ZeroMemory(key);
        plain = new byte[header.ChunkSize];
        cipher = new byte[header.ChunkSize + SealedCheckpoint.TagSize];
    }

    public CheckpointHeader Header { get; }
    /// <summary>True once the final chunk was authenticated and nothing follows it.</summary>
    public bool IsComplete => atEnd;
    public override bool CanRead => !disposed;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (buffer.IsEmpty) return 0;
        while (position == available)
        {
            if (atEnd) return 0;
            if (sawFinal)
            {
                Span<byte> probe = stackalloc byte[1];
                if (input.Read(probe) != 0) throw new SealedDataException(SealedDataFailure.Malformed, "bytes follow the checkpoint's final chunk");
                atEnd = true;
                return 0;
            }
            NextChunk();
        }
        var n = Math.Min(buffer.Length, available - position);
        plain.AsSpan(position, n).CopyTo(buffer);
        position += n;
        return n;
    }

    private void NextChunk()
    {
        Span<byte> head = stackalloc byte[SealedCheckpoint.ChunkHeaderSize];
        var got = input.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (got == 0) throw new SealedDataException(SealedDataFailure.Truncated, $"the checkpoint ends after {index} chunks without its final chunk");
        if (got < head.Length) throw new SealedDataException(SealedDataFailure.Truncated, $"the checkpoint ends inside chunk {index}");
        var flags = head[0];
        var length = BinaryPrimitives.ReadUInt32LittleEndian(head[1..]);
        if (flags > 1) throw new SealedDataException(SealedDataFailure.Malformed, $"chunk {index} has unknown flags {flags}");
        if (length > (uint)Header.ChunkSize) throw new SealedDataException(SealedDataFailure.TooLarge, $"chunk {index} claims {length} bytes, more than the chunk size {Header.ChunkSize}");
        var n = (int)length;
        SealedCheckpoint.ReadExactly(input, cipher.AsSpan(0, n + SealedCheckpoint.TagSize), $"chunk {index}");
        Span<byte> nonce = stackalloc byte[12];
        SealedCheckpoint.ChunkNonce(nonce, index, flags);
        try
        {
            gcm.Decrypt(nonce, cipher.AsSpan(0, n), cipher.AsSpan(n, SealedCheckpoint.TagSize), plain.AsSpan(0, n), SealedCheckpoint.ChunkAad(Header.Fixed, index, flags, n));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new SealedDataException(SealedDataFailure.Tampered, $"chunk {index} failed authentication (modified, reordered, or from another checkpoint)");
        }
        index++;
        available = n;
        position = 0;
        sawFinal = flags == 1;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            gcm.Dispose();
            CryptographicOperations.ZeroMemory(plain);
            if (!leaveOpen) input.Dispose();
        }
        base.Dispose(disposing);
    }
}
