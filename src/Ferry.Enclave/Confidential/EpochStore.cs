using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>
/// Whose epochs are counted: the measurement (what runs) and a random instance id chosen at launch (which of possibly
/// many workloads with that measurement). Two replicas of one service share a measurement but never an epoch line.
/// The instance id travels inside sealed state, so hosts can neither see nor change it.
/// </summary>
public sealed class WorkloadIdentity : IEquatable<WorkloadIdentity>
{
    public const int EncodedSize = Confidential.Measurement.Size + 16;

    public WorkloadIdentity(byte[] measurement, Guid instanceId)
    {
        ArgumentNullException.ThrowIfNull(measurement);
        if (measurement.Length != Confidential.Measurement.Size) throw new ArgumentException($"measurement must be {Confidential.Measurement.Size} bytes", nameof(measurement));
        Measurement = measurement.ToArray();
        InstanceId = instanceId;
        var w = new WireWriter(64);
        w.Bytes("FERRY-EPOCH-IDENTITY-V1"u8);
        w.Bytes(Measurement);
        w.Bytes(InstanceId.ToByteArray());
        Key = SHA256.HashData(w.Written);
    }

    /// <summary>A fresh instance of <paramref name="measurement"/> (at launch).</summary>
    public static WorkloadIdentity NewInstance(byte[] measurement) => new(measurement, Guid.NewGuid());

    public byte[] Measurement { get; }
    public Guid InstanceId { get; }
    /// <summary>SHA-256("FERRY-EPOCH-IDENTITY-V1" ‖ measurement ‖ instance id): the epoch store's key.</summary>
    public byte[] Key { get; }

    /// <summary>measurement (32) ‖ instance id (16), for sealing into state records and checkpoint headers.</summary>
    public byte[] Encode() => [.. Measurement, .. InstanceId.ToByteArray()];

    public static WorkloadIdentity Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != EncodedSize) throw new SealedDataException(SealedDataFailure.Malformed, $"a workload identity is {EncodedSize} bytes, not {bytes.Length}");
        return new WorkloadIdentity(bytes[..Confidential.Measurement.Size].ToArray(), new Guid(bytes[Confidential.Measurement.Size..]));
    }

    public bool Equals(WorkloadIdentity? other) => other is not null && Key.AsSpan().SequenceEqual(other.Key);
    public override bool Equals(object? obj) => Equals(obj as WorkloadIdentity);
    public override int GetHashCode() => BinaryPrimitives.ReadInt32LittleEndian(Key);
    public override string ToString() => $"{Confidential.Measurement.Short(Measurement)}…/{InstanceId:N}";
}

/// <summary>The last migration epoch a host accepted per workload identity. <see cref="EpochStore"/> is the durable one.</summary>
public interface IEpochStore
{
    /// <summary>The last accepted epoch, or null if this host never accepted state of <paramref name="identity"/>.</summary>
    ulong? LastAccepted(WorkloadIdentity identity);

    /// <summary>Atomically: if <paramref name="epoch"/> is newer than the last accepted one (or none was), record it and return true; otherwise false.</summary>
    bool TryAccept(WorkloadIdentity identity, ulong epoch);
}

/// <summary>
/// A durable, platform-sealed epoch store in a state directory: one file per identity, each sealed with
/// <see cref="ITeeBackend.SealToPlatform"/> and bound to its identity, so the host cannot edit an epoch or move one
/// identity's file onto another without the runtime refusing to go on. What a software backend cannot stop: the
/// host deleting a file or restoring an older copy of it (a real TEE would keep the epoch in a hardware monotonic
/// counter or a replicated store); docs/confidential.md states this gap.
/// </summary>
public sealed class EpochStore : IEpochStore
{
    private static ReadOnlySpan<byte> Magic => "FEPO"u8;
    private const ushort Version = 1;
    private static readonly Lock ProcessLock = new();

    private readonly ITeeBackend tee;

    public EpochStore(ITeeBackend tee, string stateDirectory)
    {
        ArgumentNullException.ThrowIfNull(tee);
        this.tee = tee;
        Directory = Path.Combine(Path.GetFullPath(stateDirectory), "epochs");
    }

    public string Directory { get; }

    public string PathOf(WorkloadIdentity identity) => Path.Combine(Directory, Convert.ToHexStringLower(identity.Key) + ".epoch");

    public ulong? LastAccepted(WorkloadIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return Read(identity);
    }

    public bool TryAccept(WorkloadIdentity identity, ulong epoch)
    {
        ArgumentNullException.ThrowIfNull(identity);
        lock (ProcessLock)
        {
            using var fileLock = AcquireFileLock();
            var last = Read(identity);
            if (last.HasValue && epoch <= last.Value) return false;
            Write(identity, epoch);
            return true;
        }
    }

    private static byte[] Aad(WorkloadIdentity identity) => [.. "FERRY-EPOCH-V1"u8, .. identity.Key];

    private ulong? Read(WorkloadIdentity identity)
    {
        var path = PathOf(identity);
        byte[] blob;
        try
        {
            blob = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EpochStoreException($"cannot read epoch file {path}: {e.Message}", e);
        }
        byte[] plain;
        try
        {
            plain = tee.UnsealFromPlatform(blob, Aad(identity));
        }
        catch (SealedDataException e)
        {
            throw new EpochStoreException(
                $"epoch file {path} does not unseal ({e.Message}); it was modified, copied from another identity or host, or corrupted. " +
                "Refusing to guess the epoch: restoring an older state could then go unnoticed", e);
        }
        if (plain.Length != 4 + 2 + 32 + 8 || !plain.AsSpan(0, 4).SequenceEqual(Magic) ||
            BinaryPrimitives.ReadUInt16LittleEndian(plain.AsSpan(4)) != Version || !plain.AsSpan(6, 32).SequenceEqual(identity.Key))
        {
            throw new EpochStoreException($"epoch file {path} has an unknown layout or another identity's key");
        }
        return BinaryPrimitives.ReadUInt64LittleEndian(plain.AsSpan(38));
    }

    private void Write(WorkloadIdentity identity, ulong epoch)
    {
        var path = PathOf(identity);
        var plain = new byte[4 + 2 + 32 + 8];
        Magic.CopyTo(plain);
        BinaryPrimitives.WriteUInt16LittleEndian(plain.AsSpan(4), Version);
        identity.Key.CopyTo(plain.AsSpan(6));
        BinaryPrimitives.WriteUInt64LittleEndian(plain.AsSpan(38), epoch);
        var blob = tee.SealToPlatform(plain, Aad(identity));
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(blob);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(tmp);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // the temporary file is harmless
            }
            throw new EpochStoreException($"cannot write epoch file {path}: {e.Message}", e);
        }
    }

    private FileStream AcquireFileLock()
    {
        try
        {
            if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(Directory);
            else System.IO.Directory.CreateDirectory(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EpochStoreException($"cannot create epoch directory {Directory}: {e.Message}", e);
        }
        var lockPath = Path.Combine(Directory, ".lock");
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive advisory lock on Unix: runtimes of one host serialise here.
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                Thread.Sleep(5);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new EpochStoreException($"cannot lock epoch store {lockPath}: {e.Message}", e);
            }
        }
    }
}
