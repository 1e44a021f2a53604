namespace Ferry.CpuFeatures.Elf;

/// <summary>ELF constants Ferry reads (System V gABI and the x86-64 psABI).</summary>
public static class ElfConstants
{
    public const ushort EtExec = 2;
    public const ushort EtDyn = 3;
    public const ushort EmX86_64 = 62;

    public const uint ShtProgbits = 1;
    public const uint ShtSymtab = 2;
    public const uint ShtStrtab = 3;
    public const uint ShtRela = 4;
    public const uint ShtDynamic = 6;
    public const uint ShtNote = 7;
    public const uint ShtNobits = 8;
    public const uint ShtDynsym = 11;
    public const uint ShtInitArray = 14;
    public const uint ShtFiniArray = 15;
    public const uint ShtPreinitArray = 16;
    public const uint ShtRelr = 19;

    public const ulong ShfAlloc = 0x2;
    public const ulong ShfExecinstr = 0x4;

    public const uint PtLoad = 1;
    public const uint PtDynamic = 2;
    public const uint PtNote = 4;
    public const uint PtGnuProperty = 0x6474e553;
    public const uint PfX = 1;

    public const byte SttObject = 1;
    public const byte SttFunc = 2;
    public const byte SttGnuIfunc = 10;
    public const byte StbLocal = 0;
    public const ushort ShnUndef = 0;
    public const ushort ShnXindex = 0xffff;

    public const long DtNull = 0;
    public const long DtNeeded = 1;
    public const long DtStrtab = 5;
    public const long DtStrsz = 10;
    public const long DtInit = 12;
    public const long DtFini = 13;
    public const long DtSoname = 14;
    public const long DtRpath = 15;
    public const long DtInitArray = 25;
    public const long DtFiniArray = 26;
    public const long DtInitArraysz = 27;
    public const long DtFiniArraysz = 28;
    public const long DtRunpath = 29;
    public const long DtPreinitArray = 32;
    public const long DtPreinitArraysz = 33;

    public const uint RX86_64_64 = 1;
    public const uint RX86_64_GlobDat = 6;
    public const uint RX86_64_JumpSlot = 7;
    public const uint RX86_64_Relative = 8;
    public const uint RX86_64_Irelative = 37;

    public const uint NtGnuPropertyType0 = 5;
    public const uint GnuPropertyX86Isa1Needed = 0xc0008002;
    public const uint GnuPropertyX86Isa1Used = 0xc0010002;
}

public enum ElfFileKind
{
    Executable,
    SharedObject,
    /// <summary>ET_DYN with an entry point and a PT_INTERP: a position-independent executable.</summary>
    PieExecutable,
}

public readonly record struct ElfSection(
    int Index, string Name, uint Type, ulong Flags, ulong Address, ulong Offset, ulong Size, uint Link, ulong EntrySize)
{
    public bool IsExecutable => (Flags & ElfConstants.ShfExecinstr) != 0 && Type == ElfConstants.ShtProgbits;
    public bool HasFileBytes => Type != ElfConstants.ShtNobits;
    public ulong End => Address + Size;
}

public readonly record struct ElfSegment(uint Type, uint Flags, ulong Offset, ulong Address, ulong FileSize, ulong MemorySize);

public readonly record struct ElfSymbol(string Name, ulong Value, ulong Size, byte Type, byte Bind, byte Visibility, ushort SectionIndex, bool IsDynamic)
{
    public bool IsDefined => SectionIndex != ElfConstants.ShnUndef;
    public bool IsFunction => Type is ElfConstants.SttFunc or ElfConstants.SttGnuIfunc;
    public bool IsIfunc => Type == ElfConstants.SttGnuIfunc;
    public bool IsObject => Type == ElfConstants.SttObject;

    /// <summary>Visible to other modules: global or weak binding and default or protected visibility.</summary>
    public bool IsExported => IsDynamic && IsDefined && Bind != ElfConstants.StbLocal && Visibility is 0 or 3;
}

/// <summary>One relocation; <see cref="SymbolName"/> is empty when the relocation names no symbol.</summary>
public readonly record struct ElfRelocation(ulong Offset, uint Type, string SymbolName, ulong SymbolValue, bool SymbolDefined, long Addend);

/// <summary>The ISA-level bits of `.note.gnu.property` (GNU_PROPERTY_X86_ISA_1_*): bit 0 baseline … bit 3 v4.</summary>
public readonly record struct IsaNote(uint? Needed, uint? Used);
