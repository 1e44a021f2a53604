using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ferry.Bench.Checkpoint;

/// <summary>
/// The raw-copy baseline (the same bytes through a FileStream with the snapshot writer's buffer size) and the
/// page-cache control both sides use: fsync, and evicting a file so the next read comes from the disk.
/// </summary>
public static unsafe partial class FileIo
{
    /// <summary>The FileStream buffer the `ferry` CLI uses for snapshots (CheckpointingRunner).</summary>
    public const int BufferBytes = 1 << 20;

    private const int PosixFadvDontneed = 4;

    public static FileStream Create(string path) => new(path, FileMode.Create, FileAccess.Write, FileShare.None, BufferBytes);

    public static FileStream OpenRead(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes);

    /// <summary>Writes [source, source + length) in 1 MiB chunks, as the snapshot writer writes its pages.</summary>
    public static void WriteRaw(FileStream file, byte* source, long length)
    {
        for (long off = 0; off < length; off += BufferBytes)
        {
            file.Write(new ReadOnlySpan<byte>(source + off, (int)Math.Min(BufferBytes, length - off)));
        }
    }

    /// <summary>Reads the whole file into [target, target + length).</summary>
    public static void ReadRaw(FileStream file, byte* target, long length)
    {
        for (long off = 0; off < length; off += BufferBytes)
        {
            file.ReadExactly(new Span<byte>(target + off, (int)Math.Min(BufferBytes, length - off)));
        }
    }

    /// <summary>Drops a (clean, fsynced) file's pages from this machine's page cache.</summary>
    public static void Evict(string path)
    {
        using var handle = File.OpenHandle(path);
        var rc = posix_fadvise(handle, 0, 0, PosixFadvDontneed);
        if (rc != 0) throw new IOException($"posix_fadvise(DONTNEED) on {path} failed: {rc}");
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int posix_fadvise(SafeFileHandle fd, long offset, long length, int advice);
}
