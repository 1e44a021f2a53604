using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Ferry.CpuFeatures.Elf;

/// <summary>
/// The bytes of one file, memory-mapped read-only (or a pinned array in tests). Every read is bounds-checked
/// against the real file length, so a header that claims a huge table can never make Ferry allocate or read it.
/// </summary>
public sealed unsafe class ElfImage : IDisposable
{
    /// <summary>Files beyond this are refused: spans are int-indexed and nothing Ferry scans is that big.</summary>
    public const long MaxLength = int.MaxValue;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private GCHandle _pin;
    private byte* _base;

    private ElfImage(byte* basePointer, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view, GCHandle pin)
    {
        _base = basePointer;
        Length = length;
        _map = map;
        _view = view;
        _pin = pin;
    }

    public long Length { get; }

    internal byte* Pointer => _base;

    public static ElfImage Open(string path)
    {
        // Check the length before opening: FIFOs and character devices report 0, and opening a FIFO blocks.
        try
        {
            if (new FileInfo(path).Length == 0)
            {
                throw new ElfFormatException(ElfErrorKind.NotElf, "empty file (or not a regular file)");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ElfFormatException(ElfErrorKind.Io, $"cannot open: {e.Message}");
        }
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ElfFormatException(ElfErrorKind.Io, $"cannot open: {e.Message}");
        }
        try
        {
            long length = stream.Length;
            if (length == 0)
            {
                throw new ElfFormatException(ElfErrorKind.NotElf, "empty file");
            }
            if (length > MaxLength)
            {
                throw new ElfFormatException(ElfErrorKind.TooLarge, $"file is {length} bytes; the limit is {MaxLength}");
            }
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new ElfImage(pointer + view.PointerOffset, length, map, view, default);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stream.Dispose();
            throw new ElfFormatException(ElfErrorKind.Io, $"cannot map: {e.Message}");
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public static ElfImage FromBytes(byte[] bytes)
    {
        var pin = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        return new ElfImage((byte*)pin.AddrOfPinnedObject(), bytes.Length, null, null, pin);
    }

    public bool Contains(ulong offset, ulong length) => offset <= (ulong)Length && length <= (ulong)Length - offset;

    /// <summary>The bytes at [offset, offset+length), or a <see cref="ElfErrorKind.Truncated"/> error naming what was being read.</summary>
    public ReadOnlySpan<byte> Span(ulong offset, ulong length, string what)
    {
        if (!Contains(offset, length))
        {
            throw new ElfFormatException(ElfErrorKind.Truncated,
                $"{what} at offset 0x{offset:x} (0x{length:x} bytes) lies past the end of the file (0x{Length:x} bytes)");
        }
        return new ReadOnlySpan<byte>(_base + offset, (int)length);
    }

    public ReadOnlySpan<byte> All => new(_base, (int)Length);

    public void Dispose()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map!.Dispose();
        }
        if (_pin.IsAllocated)
        {
            _pin.Free();
        }
        _base = null;
    }
}
