using System.Runtime.CompilerServices;
using Ferry.CpuFeatures.Elf;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// The executable sections of one file, with two bitmaps over their bytes: which addresses are known function
/// entries (decoding stops there instead of running into the next function) and which bytes some decoded run
/// already covered (the rest is swept afterwards to report code the call graph never reached).
/// </summary>
internal sealed class CodeSpace
{
    private readonly ElfSection[] _sections;
    private readonly ulong[][] _entries;
    private readonly ulong[][] _covered;
    private int _last;

    public CodeSpace(IReadOnlyList<ElfSection> codeSections)
    {
        _sections = [.. codeSections.OrderBy(s => s.Address)];
        _entries = new ulong[_sections.Length][];
        _covered = new ulong[_sections.Length][];
        for (int i = 0; i < _sections.Length; i++)
        {
            // Sizes are bounded by the file length (ElfFile checked every code section against it).
            int words = (int)((_sections[i].Size + 63) / 64);
            _entries[i] = new ulong[words];
            _covered[i] = new ulong[words];
        }
    }

    public IReadOnlyList<ElfSection> Sections => _sections;

    public ulong TotalBytes => _sections.Aggregate(0UL, (sum, s) => sum + s.Size);

    /// <summary>The index of the code section holding <paramref name="address"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(ulong address)
    {
        var last = _sections.Length > 0 ? _sections[_last] : default;
        if (_sections.Length > 0 && address >= last.Address && address < last.End)
        {
            return _last;
        }
        for (int i = 0; i < _sections.Length; i++)
        {
            if (address >= _sections[i].Address && address < _sections[i].End)
            {
                _last = i;
                return i;
            }
        }
        return -1;
    }

    public bool Contains(ulong address) => Find(address) >= 0;

    public ElfSection Section(int index) => _sections[index];

    public void MarkEntry(ulong address)
    {
        int s = Find(address);
        if (s >= 0)
        {
            ulong bit = address - _sections[s].Address;
            _entries[s][bit >> 6] |= 1UL << (int)(bit & 63);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsEntry(int section, ulong address)
    {
        ulong bit = address - _sections[section].Address;
        return (_entries[section][bit >> 6] & (1UL << (int)(bit & 63))) != 0;
    }

    /// <summary>The next known function entry after <paramref name="address"/> in its section, or the section end.</summary>
    public ulong NextEntryAfter(int section, ulong address)
    {
        var words = _entries[section];
        ulong bit = address - _sections[section].Address + 1;
        ulong size = _sections[section].Size;
        while (bit < size)
        {
            ulong word = words[bit >> 6] >> (int)(bit & 63);
            if (word != 0)
            {
                ulong found = bit + (ulong)System.Numerics.BitOperations.TrailingZeroCount(word);
                return _sections[section].Address + Math.Min(found, size);
            }
            bit = (bit | 63) + 1;
        }
        return _sections[section].End;
    }

    public void MarkCovered(int section, ulong start, ulong end)
    {
        var words = _covered[section];
        ulong first = start - _sections[section].Address, last = end - _sections[section].Address;
        while (first < last)
        {
            int shift = (int)(first & 63);
            ulong span = Math.Min(64 - (ulong)shift, last - first);
            ulong mask = span == 64 ? ulong.MaxValue : ((1UL << (int)span) - 1) << shift;
            words[first >> 6] |= mask;
            first += span;
        }
    }

    /// <summary>Maximal runs of bytes no decoded run covered, as (section, start address, end address).</summary>
    public IEnumerable<(int Section, ulong Start, ulong End)> Uncovered()
    {
        for (int s = 0; s < _sections.Length; s++)
        {
            var words = _covered[s];
            ulong size = _sections[s].Size;
            ulong bit = 0;
            while (bit < size)
            {
                if ((words[bit >> 6] & (1UL << (int)(bit & 63))) != 0)
                {
                    bit++;
                    continue;
                }
                ulong start = bit;
                while (bit < size && (words[bit >> 6] & (1UL << (int)(bit & 63))) == 0)
                {
                    bit++;
                }
                yield return (s, _sections[s].Address + start, _sections[s].Address + bit);
            }
        }
    }
}
