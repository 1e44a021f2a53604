namespace Ferry.CpuFeatures.Analysis;

/// <summary>Function symbols sorted by address, for sizes and for naming addresses in reports.</summary>
internal sealed class SymbolTable
{
    private readonly (ulong Address, ulong Size, string Name)[] _symbols;

    public SymbolTable(IEnumerable<(ulong Address, ulong Size, string Name)> symbols)
    {
        // Aliases at one address sort by descending size so the sized one is found first.
        _symbols = [.. symbols.OrderBy(s => s.Address).ThenByDescending(s => s.Size)];
    }

    public IReadOnlyList<(ulong Address, ulong Size, string Name)> All => _symbols;

    public ulong SizeOf(ulong entry)
    {
        int i = Find(entry);
        return i >= 0 && _symbols[i].Address == entry ? _symbols[i].Size : 0;
    }

    /// <summary>"symbol" or "symbol+0x1c" for the innermost function symbol covering the address, else null.</summary>
    public string? NameFor(ulong address)
    {
        int i = Find(address);
        // Walk back over symbols that start earlier but end before the address (unsized or nested).
        for (int steps = 0; i >= 0 && steps < 8; i--, steps++)
        {
            var (start, size, name) = _symbols[i];
            if (address == start)
            {
                return name;
            }
            if (address < start + Math.Max(size, 1))
            {
                return $"{name}+0x{address - start:x}";
            }
        }
        return null;
    }

    /// <summary>A report name: the symbol, else sub_ENTRY(+offset) from the function the analysis found.</summary>
    public string Describe(ulong entry, ulong address) =>
        NameFor(address) ?? (entry == address ? $"sub_{entry:x}"
            : address > entry ? $"sub_{entry:x}+0x{address - entry:x}"
            : $"sub_{entry:x}-0x{entry - address:x}"); // code placed before its entry (cold blocks)

    private int Find(ulong address)
    {
        int lo = 0, hi = _symbols.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_symbols[mid].Address <= address)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        while (found > 0 && _symbols[found - 1].Address == _symbols[found].Address)
        {
            found--;
        }
        return found;
    }
}
