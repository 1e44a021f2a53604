using System.Buffers.Binary;
using System.Text;

namespace Ferry.CpuFeatures.Elf;

/// <summary>
/// A parsed 64-bit little-endian x86-64 ELF file: headers, sections, segments, symbols, dynamic entries,
/// relocations and the ISA-level note. Parsing is defensive: every offset and count is checked against the
/// file length, fatal problems throw <see cref="ElfFormatException"/>, and damaged optional tables
/// (a symbol table past the end, a bad note) are skipped with a line in <see cref="Warnings"/>.
/// </summary>
public sealed class ElfFile
{
    /// <summary>Upper bound on names read from string tables; longer names are cut.</summary>
    private const int MaxNameLength = 4096;

    private readonly List<string> _warnings = [];
    private readonly List<ElfSection> _mappedSections = [];

    private ElfFile(ElfImage image)
    {
        Image = image;
    }

    public ElfImage Image { get; }
    public ushort Type { get; private set; }
    public ElfFileKind Kind { get; private set; }
    public ulong Entry { get; private set; }
    public IReadOnlyList<ElfSection> Sections { get; private set; } = [];
    public IReadOnlyList<ElfSegment> Segments { get; private set; } = [];
    public IReadOnlyList<ElfSymbol> Symbols { get; private set; } = [];
    public IReadOnlyList<ElfSymbol> DynamicSymbols { get; private set; } = [];
    public IReadOnlyList<ElfRelocation> Relocations { get; private set; } = [];
    public IReadOnlyList<string> Needed { get; private set; } = [];
    public string? Soname { get; private set; }
    public string? RPath { get; private set; }
    public string? RunPath { get; private set; }
    public string? Interpreter { get; private set; }
    public ulong? InitFunction { get; private set; }
    public ulong? FiniFunction { get; private set; }

    /// <summary>(address, byte size) of .preinit_array, .init_array and .fini_array.</summary>
    public IReadOnlyList<(ulong Address, ulong Size)> FunctionArrays { get; private set; } = [];

    public IsaNote IsaNote { get; private set; }
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>Code to decode: executable PROGBITS sections, or PF_X segments when there is no section table.</summary>
    public IReadOnlyList<ElfSection> CodeSections { get; private set; } = [];

    public static ElfFile Parse(ElfImage image)
    {
        var file = new ElfFile(image);
        file.ParseAll();
        return file;
    }

    /// <summary>Maps a virtual address to a file offset and the number of file bytes available from there.</summary>
    public bool TryMapAddress(ulong address, out ulong offset, out ulong available)
    {
        // Sections are sorted by address; binary search for the last one starting at or below address.
        int lo = 0, hi = _mappedSections.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_mappedSections[mid].Address <= address)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        if (found >= 0)
        {
            var s = _mappedSections[found];
            if (address < s.End)
            {
                offset = s.Offset + (address - s.Address);
                available = s.Size - (address - s.Address);
                return true;
            }
        }
        offset = 0;
        available = 0;
        return false;
    }

    /// <summary>Reads a little-endian 64-bit value at a virtual address, if the file holds those bytes.</summary>
    public bool TryReadUInt64(ulong address, out ulong value)
    {
        if (TryMapAddress(address, out var offset, out var available) && available >= 8)
        {
            value = BinaryPrimitives.ReadUInt64LittleEndian(Image.Span(offset, 8, "pointer"));
            return true;
        }
        value = 0;
        return false;
    }

    public bool TryReadInt32(ulong address, out int value)
    {
        if (TryMapAddress(address, out var offset, out var available) && available >= 4)
        {
            value = BinaryPrimitives.ReadInt32LittleEndian(Image.Span(offset, 4, "table entry"));
            return true;
        }
        value = 0;
        return false;
    }

    private void ParseAll()
    {
        var ident = Image.Length >= 4 ? Image.Span(0, 4, "ELF magic") : [];
        if (ident.Length < 4 || ident[0] != 0x7f || ident[1] != (byte)'E' || ident[2] != (byte)'L' || ident[3] != (byte)'F')
        {
            throw new ElfFormatException(ElfErrorKind.NotElf, "not an ELF file (no \\x7fELF magic)");
        }
        if (Image.Length < 64)
        {
            throw new ElfFormatException(ElfErrorKind.Truncated, $"ELF header needs 64 bytes; the file has {Image.Length}");
        }
        var header = Image.Span(0, 64, "ELF header");
        if (header[4] != 2)
        {
            throw new ElfFormatException(ElfErrorKind.Unsupported, header[4] == 1 ? "32-bit ELF (only x86-64 is analysed)" : $"bad ELF class {header[4]}");
        }
        if (header[5] != 1)
        {
            throw new ElfFormatException(ElfErrorKind.Unsupported, "big-endian ELF (only x86-64 is analysed)");
        }
        Type = BinaryPrimitives.ReadUInt16LittleEndian(header[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(header[18..]);
        if (machine != ElfConstants.EmX86_64)
        {
            throw new ElfFormatException(ElfErrorKind.Unsupported, $"ELF machine {machine} is not x86-64 (62)");
        }
        if (Type is not (ElfConstants.EtExec or ElfConstants.EtDyn))
        {
            throw new ElfFormatException(ElfErrorKind.Unsupported, Type switch
            {
                1 => "relocatable object (.o): link it first",
                4 => "core dump",
                _ => $"ELF type {Type} is neither an executable nor a shared object",
            });
        }
        Entry = BinaryPrimitives.ReadUInt64LittleEndian(header[24..]);
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(header[32..]);
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(header[40..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(header[54..]);
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(header[56..]);
        ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(header[58..]);
        uint shnum = BinaryPrimitives.ReadUInt16LittleEndian(header[60..]);
        uint shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(header[62..]);

        ParseSegments(phoff, phentsize, phnum);
        ParseSections(shoff, shentsize, shnum, shstrndx);
        BuildAddressMap();
        ParseDynamic();
        ParseSymbolTables();
        ParseRelocations();
        ParseIsaNote();

        Kind = Type == ElfConstants.EtExec ? ElfFileKind.Executable
            : Interpreter is not null && Entry != 0 ? ElfFileKind.PieExecutable
            : ElfFileKind.SharedObject;

        if (CodeSections.Count == 0 && Sections.Any(s => (s.Flags & ElfConstants.ShfExecinstr) != 0 && s.Type == ElfConstants.ShtNobits))
        {
            throw new ElfFormatException(ElfErrorKind.Unsupported, "code sections have no bytes: a separate debug-info file");
        }
        if (CodeSections.Count == 0)
        {
            throw new ElfFormatException(ElfErrorKind.Malformed, "no executable code: neither an executable section nor a PF_X segment with file bytes");
        }
    }

    private void ParseSegments(ulong phoff, ushort phentsize, ushort phnum)
    {
        if (phnum == 0)
        {
            return;
        }
        if (phentsize != 56)
        {
            throw new ElfFormatException(ElfErrorKind.Malformed, $"program header entry size is {phentsize}, not 56");
        }
        var table = Image.Span(phoff, (ulong)phnum * 56, $"program header table ({phnum} entries)");
        var segments = new List<ElfSegment>(phnum);
        for (int i = 0; i < phnum; i++)
        {
            var e = table.Slice(i * 56, 56);
            var segment = new ElfSegment(
                BinaryPrimitives.ReadUInt32LittleEndian(e),
                BinaryPrimitives.ReadUInt32LittleEndian(e[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[32..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[40..]));
            segments.Add(segment);
            if (segment.Type == 3 && Image.Contains(segment.Offset, segment.FileSize) && segment.FileSize < MaxNameLength)
            {
                Interpreter = ReadString(Image.Span(segment.Offset, segment.FileSize, "PT_INTERP"), 0);
            }
        }
        Segments = segments;
    }

    private void ParseSections(ulong shoff, ushort shentsize, uint shnum, uint shstrndx)
    {
        if (shoff == 0)
        {
            SectionsFromSegments();
            return;
        }
        if (shentsize != 64)
        {
            throw new ElfFormatException(ElfErrorKind.Malformed, $"section header entry size is {shentsize}, not 64");
        }
        // Extended numbering: a zero count or SHN_XINDEX means section 0 holds the real values.
        var first = Image.Span(shoff, 64, "section header table");
        if (shnum == 0)
        {
            shnum = (uint)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(first[32..]), uint.MaxValue);
        }
        if (shstrndx == ElfConstants.ShnXindex)
        {
            shstrndx = BinaryPrimitives.ReadUInt32LittleEndian(first[40..]);
        }
        var table = Image.Span(shoff, (ulong)shnum * 64, $"section header table ({shnum} entries)");
        var raw = new (uint Name, uint Type, ulong Flags, ulong Address, ulong Offset, ulong Size, uint Link, ulong EntSize)[shnum];
        for (int i = 0; i < shnum; i++)
        {
            var e = table.Slice(i * 64, 64);
            raw[i] = (
                BinaryPrimitives.ReadUInt32LittleEndian(e),
                BinaryPrimitives.ReadUInt32LittleEndian(e[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[24..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[32..]),
                BinaryPrimitives.ReadUInt32LittleEndian(e[40..]),
                BinaryPrimitives.ReadUInt64LittleEndian(e[56..]));
        }
        ReadOnlySpan<byte> names = [];
        if (shstrndx < shnum && raw[shstrndx].Type == ElfConstants.ShtStrtab)
        {
            var s = raw[shstrndx];
            if (Image.Contains(s.Offset, s.Size))
            {
                names = Image.Span(s.Offset, s.Size, "section name table");
            }
            else
            {
                _warnings.Add("section name table lies past the end of the file; sections are unnamed");
            }
        }
        var sections = new List<ElfSection>((int)shnum);
        for (int i = 0; i < shnum; i++)
        {
            var r = raw[i];
            string name = r.Name < names.Length ? ReadString(names, (int)r.Name) : "";
            sections.Add(new ElfSection(i, name, r.Type, r.Flags, r.Address, r.Offset, r.Size, r.Link, r.EntSize));
        }
        Sections = sections;

        var code = new List<ElfSection>();
        foreach (var section in sections)
        {
            if (!section.IsExecutable || section.Size == 0)
            {
                continue;
            }
            if (!Image.Contains(section.Offset, section.Size))
            {
                throw new ElfFormatException(ElfErrorKind.Truncated,
                    $"code section {Describe(section)} at offset 0x{section.Offset:x} (0x{section.Size:x} bytes) lies past the end of the file (0x{Image.Length:x} bytes)");
            }
            code.Add(section);
        }
        CodeSections = code;
    }

    /// <summary>Stripped section tables: treat each PF_X load segment as one code section.</summary>
    private void SectionsFromSegments()
    {
        var code = new List<ElfSection>();
        var mapped = new List<ElfSection>();
        int index = 0;
        foreach (var segment in Segments)
        {
            if (segment.Type != ElfConstants.PtLoad || segment.FileSize == 0)
            {
                continue;
            }
            if (!Image.Contains(segment.Offset, segment.FileSize))
            {
                throw new ElfFormatException(ElfErrorKind.Truncated,
                    $"load segment at offset 0x{segment.Offset:x} (0x{segment.FileSize:x} bytes) lies past the end of the file (0x{Image.Length:x} bytes)");
            }
            ulong flags = ElfConstants.ShfAlloc | ((segment.Flags & ElfConstants.PfX) != 0 ? ElfConstants.ShfExecinstr : 0);
            var section = new ElfSection(--index, $"LOAD@0x{segment.Address:x}", ElfConstants.ShtProgbits, flags,
                segment.Address, segment.Offset, segment.FileSize, 0, 0);
            mapped.Add(section);
            if (section.IsExecutable)
            {
                code.Add(section);
            }
        }
        Sections = mapped;
        CodeSections = code;
        _warnings.Add("no section header table: code taken from executable load segments, symbols from the dynamic table only");
    }

    private void BuildAddressMap()
    {
        foreach (var section in Sections)
        {
            if ((section.Flags & ElfConstants.ShfAlloc) != 0 && section.HasFileBytes && section.Size > 0 && section.Address != 0
                && Image.Contains(section.Offset, section.Size))
            {
                _mappedSections.Add(section);
            }
        }
        if (_mappedSections.Count == 0)
        {
            foreach (var segment in Segments)
            {
                if (segment.Type == ElfConstants.PtLoad && segment.FileSize > 0 && Image.Contains(segment.Offset, segment.FileSize))
                {
                    _mappedSections.Add(new ElfSection(-1, "LOAD", ElfConstants.ShtProgbits, ElfConstants.ShfAlloc,
                        segment.Address, segment.Offset, segment.FileSize, 0, 0));
                }
            }
        }
        _mappedSections.Sort((a, b) => a.Address.CompareTo(b.Address));
    }

    private void ParseDynamic()
    {
        ReadOnlySpan<byte> dynamic = [];
        ulong dynOffset = 0, dynSize = 0;
        foreach (var section in Sections)
        {
            if (section.Type == ElfConstants.ShtDynamic)
            {
                (dynOffset, dynSize) = (section.Offset, section.Size);
                break;
            }
        }
        if (dynSize == 0)
        {
            foreach (var segment in Segments)
            {
                if (segment.Type == ElfConstants.PtDynamic)
                {
                    (dynOffset, dynSize) = (segment.Offset, segment.FileSize);
                    break;
                }
            }
        }
        if (dynSize == 0)
        {
            return;
        }
        if (!Image.Contains(dynOffset, dynSize))
        {
            _warnings.Add("dynamic section lies past the end of the file; DT_NEEDED and init functions are unknown");
            return;
        }
        dynamic = Image.Span(dynOffset, dynSize, "dynamic section");
        var entries = new List<(long Tag, ulong Value)>();
        for (int i = 0; i + 16 <= dynamic.Length; i += 16)
        {
            long tag = BinaryPrimitives.ReadInt64LittleEndian(dynamic[i..]);
            if (tag == ElfConstants.DtNull)
            {
                break;
            }
            entries.Add((tag, BinaryPrimitives.ReadUInt64LittleEndian(dynamic[(i + 8)..])));
        }
        ulong strtabAddress = 0, strtabSize = 0;
        foreach (var (tag, value) in entries)
        {
            if (tag == ElfConstants.DtStrtab)
            {
                strtabAddress = value;
            }
            else if (tag == ElfConstants.DtStrsz)
            {
                strtabSize = value;
            }
        }
        ReadOnlySpan<byte> strings = [];
        if (strtabAddress != 0 && TryMapAddress(strtabAddress, out var strOffset, out var available))
        {
            strings = Image.Span(strOffset, Math.Min(available, strtabSize == 0 ? available : strtabSize), "dynamic string table");
        }
        var needed = new List<string>();
        var arrays = new List<(ulong, ulong)>();
        ulong initArray = 0, finiArray = 0, preinitArray = 0, initSize = 0, finiSize = 0, preinitSize = 0;
        foreach (var (tag, value) in entries)
        {
            switch (tag)
            {
                case ElfConstants.DtNeeded when value < (ulong)strings.Length:
                    needed.Add(ReadString(strings, (int)value));
                    break;
                case ElfConstants.DtSoname when value < (ulong)strings.Length:
                    Soname = ReadString(strings, (int)value);
                    break;
                case ElfConstants.DtRpath when value < (ulong)strings.Length:
                    RPath = ReadString(strings, (int)value);
                    break;
                case ElfConstants.DtRunpath when value < (ulong)strings.Length:
                    RunPath = ReadString(strings, (int)value);
                    break;
                case ElfConstants.DtInit:
                    InitFunction = value;
                    break;
                case ElfConstants.DtFini:
                    FiniFunction = value;
                    break;
                case ElfConstants.DtInitArray:
                    initArray = value;
                    break;
                case ElfConstants.DtFiniArray:
                    finiArray = value;
                    break;
                case ElfConstants.DtPreinitArray:
                    preinitArray = value;
                    break;
                case ElfConstants.DtInitArraysz:
                    initSize = value;
                    break;
                case ElfConstants.DtFiniArraysz:
                    finiSize = value;
                    break;
                case ElfConstants.DtPreinitArraysz:
                    preinitSize = value;
                    break;
            }
        }
        if (needed.Count > 0 && strings.Length == 0)
        {
            _warnings.Add("dynamic string table is missing; DT_NEEDED names are unknown");
        }
        foreach (var (address, size) in new[] { (preinitArray, preinitSize), (initArray, initSize), (finiArray, finiSize) })
        {
            if (address != 0 && size != 0)
            {
                arrays.Add((address, size));
            }
        }
        // Static executables have no dynamic section, but their arrays still have sections.
        foreach (var section in Sections)
        {
            if (section.Type is ElfConstants.ShtInitArray or ElfConstants.ShtFiniArray or ElfConstants.ShtPreinitArray
                && !arrays.Contains((section.Address, section.Size)))
            {
                arrays.Add((section.Address, section.Size));
            }
        }
        Needed = needed;
        FunctionArrays = arrays;
    }

    private void ParseSymbolTables()
    {
        var symbols = new List<ElfSymbol>();
        var dynamicSymbols = new List<ElfSymbol>();
        foreach (var section in Sections)
        {
            if (section.Type is not (ElfConstants.ShtSymtab or ElfConstants.ShtDynsym))
            {
                continue;
            }
            bool isDynamic = section.Type == ElfConstants.ShtDynsym;
            if (!Image.Contains(section.Offset, section.Size) || section.Link >= Sections.Count)
            {
                _warnings.Add($"symbol table {Describe(section)} lies past the end of the file or has no string table; skipped");
                continue;
            }
            var strtab = Sections[(int)section.Link];
            if (!Image.Contains(strtab.Offset, strtab.Size))
            {
                _warnings.Add($"string table of {Describe(section)} lies past the end of the file; skipped");
                continue;
            }
            var table = Image.Span(section.Offset, section.Size, "symbol table");
            var strings = Image.Span(strtab.Offset, strtab.Size, "symbol string table");
            var target = isDynamic ? dynamicSymbols : symbols;
            for (int i = 0; i + 24 <= table.Length; i += 24)
            {
                var e = table.Slice(i, 24);
                uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(e);
                byte info = e[4];
                target.Add(new ElfSymbol(
                    nameOffset < strings.Length ? ReadString(strings, (int)nameOffset) : "",
                    BinaryPrimitives.ReadUInt64LittleEndian(e[8..]),
                    BinaryPrimitives.ReadUInt64LittleEndian(e[16..]),
                    (byte)(info & 0xf),
                    (byte)(info >> 4),
                    (byte)(e[5] & 0x3),
                    BinaryPrimitives.ReadUInt16LittleEndian(e[6..]),
                    isDynamic));
            }
        }
        Symbols = symbols;
        DynamicSymbols = dynamicSymbols;
    }

    private void ParseRelocations()
    {
        var relocations = new List<ElfRelocation>();
        foreach (var section in Sections)
        {
            if (section.Type == ElfConstants.ShtRela)
            {
                ReadRela(section, relocations);
            }
            else if (section.Type == ElfConstants.ShtRelr)
            {
                ReadRelr(section, relocations);
            }
        }
        Relocations = relocations;
    }

    private void ReadRela(ElfSection section, List<ElfRelocation> relocations)
    {
        if (!Image.Contains(section.Offset, section.Size))
        {
            _warnings.Add($"relocation section {Describe(section)} lies past the end of the file; skipped");
            return;
        }
        // Relocations name symbols of the table in sh_link: .dynsym for dynamic relocations.
        IReadOnlyList<ElfSymbol> symbols = DynamicSymbols;
        if (section.Link < Sections.Count && Sections[(int)section.Link].Type == ElfConstants.ShtSymtab)
        {
            symbols = Symbols;
        }
        var table = Image.Span(section.Offset, section.Size, "relocation table");
        for (int i = 0; i + 24 <= table.Length; i += 24)
        {
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(table[i..]);
            ulong info = BinaryPrimitives.ReadUInt64LittleEndian(table[(i + 8)..]);
            long addend = BinaryPrimitives.ReadInt64LittleEndian(table[(i + 16)..]);
            uint type = (uint)info;
            if (type is not (ElfConstants.RX86_64_64 or ElfConstants.RX86_64_GlobDat or ElfConstants.RX86_64_JumpSlot
                or ElfConstants.RX86_64_Relative or ElfConstants.RX86_64_Irelative))
            {
                continue;
            }
            uint symbolIndex = (uint)(info >> 32);
            string name = "";
            ulong value = 0;
            bool defined = false;
            if (symbolIndex != 0 && symbolIndex < symbols.Count)
            {
                var symbol = symbols[(int)symbolIndex];
                (name, value, defined) = (symbol.Name, symbol.Value, symbol.IsDefined);
            }
            relocations.Add(new ElfRelocation(offset, type, name, value, defined, addend));
        }
    }

    /// <summary>SHT_RELR packs R_X86_64_RELATIVE relocations as addresses and bitmaps; the addend is in place.</summary>
    private void ReadRelr(ElfSection section, List<ElfRelocation> relocations)
    {
        if (!Image.Contains(section.Offset, section.Size))
        {
            _warnings.Add($"relocation section {Describe(section)} lies past the end of the file; skipped");
            return;
        }
        var table = Image.Span(section.Offset, section.Size, "RELR table");
        ulong where = 0;
        for (int i = 0; i + 8 <= table.Length; i += 8)
        {
            ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(table[i..]);
            if ((entry & 1) == 0)
            {
                AddRelr(entry, relocations);
                where = entry + 8;
                continue;
            }
            for (int bit = 1; bit < 64; bit++)
            {
                if ((entry >> bit & 1) != 0)
                {
                    AddRelr(where + (ulong)(bit - 1) * 8, relocations);
                }
            }
            where += 63 * 8;
        }
    }

    private void AddRelr(ulong address, List<ElfRelocation> relocations)
    {
        if (TryReadUInt64(address, out var value))
        {
            relocations.Add(new ElfRelocation(address, ElfConstants.RX86_64_Relative, "", 0, false, (long)value));
        }
    }

    private void ParseIsaNote()
    {
        uint? needed = null, used = null;
        bool sawNoteSection = false;
        foreach (var section in Sections)
        {
            if (section.Type == ElfConstants.ShtNote && section.Name == ".note.gnu.property")
            {
                sawNoteSection = true;
                ReadPropertyNotes(section.Offset, section.Size, ref needed, ref used);
            }
        }
        if (!sawNoteSection)
        {
            foreach (var segment in Segments)
            {
                if (segment.Type == ElfConstants.PtGnuProperty)
                {
                    ReadPropertyNotes(segment.Offset, segment.FileSize, ref needed, ref used);
                }
            }
        }
        IsaNote = new IsaNote(needed, used);
    }

    private void ReadPropertyNotes(ulong offset, ulong size, ref uint? needed, ref uint? used)
    {
        if (!Image.Contains(offset, size))
        {
            _warnings.Add(".note.gnu.property lies past the end of the file; ignored");
            return;
        }
        var notes = Image.Span(offset, size, ".note.gnu.property");
        int position = 0;
        while (position + 12 <= notes.Length)
        {
            uint nameSize = BinaryPrimitives.ReadUInt32LittleEndian(notes[position..]);
            uint descSize = BinaryPrimitives.ReadUInt32LittleEndian(notes[(position + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[(position + 8)..]);
            long descStart = position + 12 + Align(nameSize, 4);
            if (descStart > notes.Length || descSize > notes.Length - descStart)
            {
                _warnings.Add(".note.gnu.property entry runs past its section; ignored");
                return;
            }
            bool isGnu = nameSize == 4 && notes.Slice(position + 12, 4).SequenceEqual("GNU\0"u8);
            if (isGnu && type == ElfConstants.NtGnuPropertyType0)
            {
                var desc = notes.Slice((int)descStart, (int)descSize);
                int p = 0;
                while (p + 8 <= desc.Length)
                {
                    uint propertyType = BinaryPrimitives.ReadUInt32LittleEndian(desc[p..]);
                    uint dataSize = BinaryPrimitives.ReadUInt32LittleEndian(desc[(p + 4)..]);
                    if (dataSize > desc.Length - p - 8)
                    {
                        break;
                    }
                    if (dataSize == 4)
                    {
                        uint bits = BinaryPrimitives.ReadUInt32LittleEndian(desc[(p + 8)..]);
                        if (propertyType == ElfConstants.GnuPropertyX86Isa1Needed)
                        {
                            needed = (needed ?? 0) | bits;
                        }
                        else if (propertyType == ElfConstants.GnuPropertyX86Isa1Used)
                        {
                            used = (used ?? 0) | bits;
                        }
                    }
                    p += 8 + (int)Align(dataSize, 8);
                }
            }
            // Note descriptors in 64-bit files are 8-aligned for NT_GNU_PROPERTY_TYPE_0, 4 for others.
            position = (int)(descStart + Align(descSize, type == ElfConstants.NtGnuPropertyType0 ? 8u : 4u));
        }
    }

    private static long Align(uint value, uint alignment) => ((long)value + alignment - 1) & ~((long)alignment - 1);

    private static string Describe(ElfSection section) => section.Name.Length > 0 ? section.Name : $"#{section.Index}";

    private static string ReadString(ReadOnlySpan<byte> table, int offset)
    {
        var rest = table[offset..];
        int end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            end = rest.Length;
        }
        return Encoding.UTF8.GetString(rest[..Math.Min(end, MaxNameLength)]);
    }
}
