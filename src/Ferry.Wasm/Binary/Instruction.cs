using System.Runtime.CompilerServices;

namespace Ferry.Wasm.Binary;

/// <summary>
/// One decoded instruction with its immediates. A plain struct reused by the caller, so decoding allocates
/// nothing; which fields are meaningful depends on <see cref="OpInfo.Immediate"/>.
/// </summary>
public struct Instruction
{
    /// <summary>Engine opcode number (see <see cref="Opcodes"/>).</summary>
    public int Opcode;
    /// <summary>File offset of the first byte of the instruction.</summary>
    public int Offset;
    /// <summary>Block type as s33: -64 (0x40) = empty, other negatives = a single value type, &gt;= 0 = type index.</summary>
    public long BlockType;
    /// <summary>First index immediate (label, function, local, global, table, type, segment, memory).</summary>
    public uint Index;
    /// <summary>Second index immediate (call_indirect's table, copy's source, init's target).</summary>
    public uint Index2;
    /// <summary>Memory access: static offset.</summary>
    public ulong MemOffset;
    /// <summary>Memory access: alignment exponent as encoded.</summary>
    public uint Align;
    /// <summary>Lane index for lane instructions.</summary>
    public byte Lane;
    /// <summary>Constant bits (i32/i64/f32/f64), or the low half of a v128 constant or shuffle mask.</summary>
    public ulong Bits;
    /// <summary>High half of a v128 constant or shuffle mask.</summary>
    public ulong BitsHigh;
    /// <summary>Typed select / ref.null: the value type.</summary>
    public ValueType Type;
    /// <summary>Typed select: number of types given (must be 1 to be valid).</summary>
    public int TypeCount;

    public const long EmptyBlock = -64;

    /// <summary>For a block type naming a single value type: that type.</summary>
    public readonly ValueType BlockValueType => (ValueType)(byte)(BlockType + 0x80);

    public readonly int I32 => unchecked((int)Bits);
    public readonly long I64 => unchecked((long)Bits);
}

/// <summary>
/// Decodes instructions from a function body or constant expression. Shared by the validator and the
/// compiler so both see exactly the same instruction stream.
/// </summary>
public ref struct InstructionReader
{
    private WasmReader reader;
    private readonly bool memory64;
    private uint[] brTargets;
    private int brCount;

    public InstructionReader(ReadOnlySpan<byte> code, int fileOffset, bool memory64, string where)
    {
        reader = new WasmReader(code, fileOffset, where) { EndMessage = "unexpected end of section or function" };
        this.memory64 = memory64;
        brTargets = [];
    }

    public readonly bool AtEnd => reader.AtEnd;
    public readonly int FileOffset => reader.FileOffset;
    public readonly int Position => reader.Position;

    /// <summary>Targets of the last br_table read, default target last.</summary>
    public readonly ReadOnlySpan<uint> BrTableTargets => brTargets.AsSpan(0, brCount);

    public readonly void Fail(string reason) => reader.Fail(reason);

    /// <summary>Reads the next instruction and returns its static info.</summary>
    public OpInfo Read(ref Instruction ins)
    {
        ins.Offset = reader.FileOffset;
        int code = reader.ReadByte();
        if (code == 0xFC)
        {
            var sub = reader.ReadU32();
            code = sub < 0x100 ? Opcodes.MiscBase + (int)sub : -1;
        }
        else if (code == 0xFD)
        {
            var sub = reader.ReadU32();
            code = sub < 0x100 ? Opcodes.SimdBase + (int)sub : -1;
        }
        var info = Opcodes.Get(code);
        if (info is null) reader.FailAt("illegal opcode", ins.Offset - 0);
        ins.Opcode = code;
        switch (info.Immediate)
        {
            case Immediate.None:
                break;
            case Immediate.BlockType:
                ReadBlockType(ref ins);
                break;
            case Immediate.Label:
            case Immediate.Function:
            case Immediate.Local:
            case Immediate.Global:
            case Immediate.Table:
            case Immediate.Data:
            case Immediate.Element:
                ins.Index = reader.ReadU32();
                break;
            case Immediate.BrTable:
                ReadBrTable();
                break;
            case Immediate.CallIndirect:
                ins.Index = reader.ReadU32();
                ins.Index2 = reader.ReadU32();
                break;
            case Immediate.MemArg:
                ReadMemArg(ref ins);
                break;
            case Immediate.MemArgLane:
                ReadMemArg(ref ins);
                ins.Lane = reader.ReadByte();
                break;
            case Immediate.Memory:
                ins.Index = ReadZeroByte();
                break;
            case Immediate.I32:
                ins.Bits = unchecked((ulong)(long)reader.ReadS32());
                break;
            case Immediate.I64:
                ins.Bits = unchecked((ulong)reader.ReadS64());
                break;
            case Immediate.F32:
                ins.Bits = reader.ReadF32Bits();
                break;
            case Immediate.F64:
                ins.Bits = reader.ReadF64Bits();
                break;
            case Immediate.V128:
            case Immediate.Shuffle:
                ins.Bits = reader.ReadF64Bits();
                ins.BitsHigh = reader.ReadF64Bits();
                break;
            case Immediate.SelectTyped:
                ins.TypeCount = reader.ReadCount();
                ins.Type = default;
                for (var i = 0; i < ins.TypeCount; i++)
                {
                    var t = ReadValueType();
                    if (i == 0) ins.Type = t;
                }
                break;
            case Immediate.RefType:
                ins.Type = ReadRefType();
                break;
            case Immediate.MemoryInit:
                ins.Index = reader.ReadU32();
                ins.Index2 = ReadZeroByte();
                break;
            case Immediate.MemoryCopy:
                ins.Index = ReadZeroByte();
                ins.Index2 = ReadZeroByte();
                break;
            case Immediate.TableInit:
                ins.Index = reader.ReadU32();
                ins.Index2 = reader.ReadU32();
                break;
            case Immediate.TableCopy:
                ins.Index = reader.ReadU32();
                ins.Index2 = reader.ReadU32();
                break;
            case Immediate.Lane:
                ins.Lane = reader.ReadByte();
                break;
        }
        return info;
    }

    private uint ReadZeroByte()
    {
        var b = reader.ReadByte();
        if (b != 0) reader.Fail("zero byte expected");
        return 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ReadMemArg(ref Instruction ins)
    {
        ins.Align = reader.ReadU32();
        ins.MemOffset = memory64 ? reader.ReadU64() : reader.ReadU32();
    }

    private void ReadBlockType(ref Instruction ins)
    {
        var b = reader.PeekByte();
        if (b == 0x40)
        {
            reader.ReadByte();
            ins.BlockType = Instruction.EmptyBlock;
            return;
        }
        if (ValueTypeExtensions.IsValid(b))
        {
            reader.ReadByte();
            ins.BlockType = b - 0x80; // the one-byte s33 value of a value type code
            return;
        }
        var index = reader.ReadS33();
        if (index < 0) reader.Fail("malformed block type");
        ins.BlockType = index;
    }

    private void ReadBrTable()
    {
        var n = reader.ReadCount();
        if (brTargets.Length < n + 1) brTargets = new uint[Math.Max(n + 1, brTargets.Length * 2)];
        for (var i = 0; i <= n; i++) brTargets[i] = reader.ReadU32();
        brCount = n + 1;
    }

    private ValueType ReadValueType()
    {
        var b = reader.ReadByte();
        if (!ValueTypeExtensions.IsValid(b)) reader.Fail("malformed value type");
        return (ValueType)b;
    }

    private ValueType ReadRefType()
    {
        var b = reader.ReadByte();
        if (b is not (0x70 or 0x6F)) reader.Fail("malformed reference type");
        return (ValueType)b;
    }
}
