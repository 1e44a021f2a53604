using Iced.Intel;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Feeds Iced's decoder from the mapped file without copying. The limit is the end of the current code
/// section, so an instruction can never be decoded from bytes past it (Iced reports it as invalid instead).
/// </summary>
internal sealed unsafe class PointerCodeReader : CodeReader
{
    private readonly byte* _base;
    private int _position;
    private int _limit;

    public PointerCodeReader(byte* basePointer)
    {
        _base = basePointer;
    }

    /// <summary>Moves to a file offset; reads stop at <paramref name="limit"/> (exclusive).</summary>
    public void Seek(int position, int limit)
    {
        _position = position;
        _limit = limit;
    }

    public int Position => _position;

    public int Limit => _limit;

    public override int ReadByte() => _position < _limit ? _base[_position++] : -1;
}
