using System.Collections.Immutable;

namespace Ferry.Wasm.Binary;

/// <summary>
/// Decodes the binary format into a <see cref="Module"/>. Checks everything the binary format defines
/// (malformed modules); type checking is left to the validator. Never allocates in proportion to a count
/// the file merely claims: every vector length is bounded by the bytes that remain.
/// </summary>
public static class ModuleDecoder
{
    private const int MaxLocals = 50_000;

    public static Module Decode(ReadOnlyMemory<byte> bytes)
    {
        var span = bytes.Span;
        var r = new WasmReader(span, 0, "header");
        if (span.Length < 4 || span[0] != 0 || span[1] != (byte)'a' || span[2] != (byte)'s' || span[3] != (byte)'m')
        {
            r.Fail("magic header not detected");
        }
        r.ReadBytes(4);
        if (r.Remaining < 4) r.Fail("unexpected end");
        var version = r.ReadBytes(4);
        if (version[0] != 1 || version[1] != 0 || version[2] != 0 || version[3] != 0) r.FailAt("unknown binary version", 4);

        var state = new DecodeState(bytes);
        var lastOrder = 0;
        while (!r.AtEnd)
        {
            r.Section = "header";
            var id = r.ReadByte();
            if (id > 12) r.FailAt("malformed section id", r.Position - 1);
            var size = r.ReadU32();
            if (size > r.Remaining) r.Fail("length out of bounds");
            var start = r.Position;
            var order = SectionOrder(id);
            if (id != 0)
            {
                if (order <= lastOrder) r.FailAt("unexpected content after last section", start - 1);
                lastOrder = order;
            }
            var content = span.Slice(start, (int)size);
            var sr = new WasmReader(content, start, SectionName(id)) { EndMessage = "unexpected end of section or function" };
            state.ReadSection(id, ref sr);
            if (!sr.AtEnd) sr.Fail("section size mismatch");
            r.Seek(start + (int)size);
        }
        return state.Finish();
    }

    private static int SectionOrder(byte id) => id switch
    {
        12 => 10, // the data count section sits between element (9) and code (10)
        10 => 11,
        11 => 12,
        _ => id,
    };

    public static string SectionName(byte id) => id switch
    {
        0 => "custom",
        1 => "type",
        2 => "import",
        3 => "function",
        4 => "table",
        5 => "memory",
        6 => "global",
        7 => "export",
        8 => "start",
        9 => "element",
        10 => "code",
        11 => "data",
        12 => "datacount",
        _ => $"#{id}",
    };

    private sealed class DecodeState(ReadOnlyMemory<byte> bytes)
    {
        private ImmutableArray<FuncType> types = [];
        private readonly List<Import> imports = [];
        private readonly List<int> functionTypes = [];
        private readonly List<TableType> tables = [];
        private readonly List<MemoryType> memories = [];
        private readonly List<GlobalType> globalTypes = [];
        private readonly List<Global> globals = [];
        private ImmutableArray<Export> exports = [];
        private int? start;
        private ImmutableArray<ElementSegment> elements = [];
        private ImmutableArray<DataSegment> data = [];
        private int? dataCount;
        private ImmutableArray<FunctionBody> bodies = [];
        private NameSection names = NameSection.Empty;
        private int importedFunctions, importedTables, importedMemories, importedGlobals;
        private int declaredFunctions;
        private bool sawFunctionSection, sawCodeSection;

        public void ReadSection(byte id, ref WasmReader r)
        {
            switch (id)
            {
                case 0: ReadCustom(ref r); break;
                case 1: ReadTypes(ref r); break;
                case 2: ReadImports(ref r); break;
                case 3: ReadFunctions(ref r); break;
                case 4: ReadTables(ref r); break;
                case 5: ReadMemories(ref r); break;
                case 6: ReadGlobals(ref r); break;
                case 7: ReadExports(ref r); break;
                case 8: start = (int)r.ReadU32(); break;
                case 9: ReadElements(ref r); break;
                case 10: ReadCode(ref r); break;
                case 11: ReadData(ref r); break;
                case 12: dataCount = (int)Math.Min(r.ReadU32(), int.MaxValue); break;
            }
        }

        public Module Finish()
        {
            if (declaredFunctions != bodies.Length && (sawFunctionSection || sawCodeSection))
            {
                throw new MalformedModuleException("function and code section have inconsistent lengths", bytes.Length, "code");
            }
            if (dataCount is { } dc && dc != data.Length)
            {
                throw new MalformedModuleException("data count and data section have inconsistent lengths", bytes.Length, "data");
            }
            return new Module
            {
                Types = types,
                Imports = [.. imports],
                FunctionTypeIndices = [.. functionTypes],
                Tables = [.. tables],
                Memories = [.. memories],
                GlobalTypes = [.. globalTypes],
                Globals = [.. globals],
                Exports = exports,
                StartFunction = start,
                Elements = elements,
                Data = data,
                DataCount = dataCount,
                Bodies = bodies,
                Names = names,
                Bytes = bytes,
                ImportedFunctionCount = importedFunctions,
                ImportedTableCount = importedTables,
                ImportedMemoryCount = importedMemories,
                ImportedGlobalCount = importedGlobals,
            };
        }

        private bool Memory64 => memories.Count > 0 && memories[0].Is64;

        private void ReadCustom(ref WasmReader r)
        {
            var name = r.ReadName();
            if (name == "name")
            {
                // The name section is advisory: a damaged one is ignored rather than failing the module.
                try
                {
                    names = ReadNames(r.ReadBytes(r.Remaining), r.FileOffset);
                }
                catch (MalformedModuleException)
                {
                    names = NameSection.Empty;
                }
                return;
            }
            r.ReadBytes(r.Remaining);
        }

        private static NameSection ReadNames(ReadOnlySpan<byte> content, int offset)
        {
            var r = new WasmReader(content, offset, "name");
            string? moduleName = null;
            var functions = ImmutableDictionary.CreateBuilder<int, string>();
            while (!r.AtEnd)
            {
                var kind = r.ReadByte();
                var size = r.ReadCount();
                var sub = r.ReadBytes(size);
                var sr = new WasmReader(sub, 0, "name");
                if (kind == 0)
                {
                    moduleName = sr.ReadName();
                }
                else if (kind == 1)
                {
                    var n = sr.ReadCount();
                    for (var i = 0; i < n; i++)
                    {
                        var index = (int)sr.ReadU32();
                        functions[index] = sr.ReadName();
                    }
                }
            }
            return new NameSection(moduleName, functions.ToImmutable());
        }

        private void ReadTypes(ref WasmReader r)
        {
            var n = r.ReadCount();
            var list = ImmutableArray.CreateBuilder<FuncType>(n);
            for (var i = 0; i < n; i++)
            {
                var form = r.ReadByte();
                if (form != 0x60) r.FailAt("integer representation too long", r.Position - 1);
                var ps = ReadValueTypes(ref r);
                var rs = ReadValueTypes(ref r);
                list.Add(new FuncType(ps, rs));
            }
            types = list.MoveToImmutable();
        }

        private static ValueType[] ReadValueTypes(ref WasmReader r)
        {
            var n = r.ReadCount();
            var result = new ValueType[n];
            for (var i = 0; i < n; i++) result[i] = ReadValueType(ref r);
            return result;
        }

        private static ValueType ReadValueType(ref WasmReader r)
        {
            var b = r.ReadByte();
            if (!ValueTypeExtensions.IsValid(b)) r.FailAt("malformed value type", r.Position - 1);
            return (ValueType)b;
        }

        private static ValueType ReadRefType(ref WasmReader r)
        {
            var b = r.ReadByte();
            if (b is not (0x70 or 0x6F)) r.FailAt("malformed reference type", r.Position - 1);
            return (ValueType)b;
        }

        private static Limits ReadLimits(ref WasmReader r, bool allow64, out bool is64)
        {
            var flags = r.ReadByte();
            is64 = false;
            switch (flags)
            {
                case 0x00: return new Limits(r.ReadU32(), null);
                case 0x01: return new Limits(r.ReadU32(), r.ReadU32());
                case 0x04 when allow64: is64 = true; return new Limits(r.ReadU64(), null);
                case 0x05 when allow64: is64 = true; return new Limits(r.ReadU64(), r.ReadU64());
                default:
                    r.FailAt("malformed limits flags", r.Position - 1);
                    return default;
            }
        }

        private static TableType ReadTableType(ref WasmReader r)
        {
            var t = ReadRefType(ref r);
            var limits = ReadLimits(ref r, allow64: false, out _);
            return new TableType(t, limits);
        }

        private static MemoryType ReadMemoryType(ref WasmReader r)
        {
            var limits = ReadLimits(ref r, allow64: true, out var is64);
            return new MemoryType(limits, is64);
        }

        private static GlobalType ReadGlobalType(ref WasmReader r)
        {
            var t = ReadValueType(ref r);
            var m = r.ReadByte();
            if (m > 1) r.FailAt("malformed mutability", r.Position - 1);
            return new GlobalType(t, m == 1);
        }

        private void ReadImports(ref WasmReader r)
        {
            var n = r.ReadCount();
            for (var i = 0; i < n; i++)
            {
                var module = r.ReadName();
                var name = r.ReadName();
                var kind = r.ReadByte();
                switch (kind)
                {
                    case 0:
                        var typeIndex = (int)Math.Min(r.ReadU32(), int.MaxValue);
                        imports.Add(new Import(module, name, ExternalKind.Function, typeIndex, default, default, default));
                        functionTypes.Add(typeIndex);
                        importedFunctions++;
                        break;
                    case 1:
                        var tt = ReadTableType(ref r);
                        imports.Add(new Import(module, name, ExternalKind.Table, -1, tt, default, default));
                        tables.Add(tt);
                        importedTables++;
                        break;
                    case 2:
                        var mt = ReadMemoryType(ref r);
                        imports.Add(new Import(module, name, ExternalKind.Memory, -1, default, mt, default));
                        memories.Add(mt);
                        importedMemories++;
                        break;
                    case 3:
                        var gt = ReadGlobalType(ref r);
                        imports.Add(new Import(module, name, ExternalKind.Global, -1, default, default, gt));
                        globalTypes.Add(gt);
                        importedGlobals++;
                        break;
                    default:
                        r.FailAt("malformed import kind", r.Position - 1);
                        break;
                }
            }
        }

        private void ReadFunctions(ref WasmReader r)
        {
            sawFunctionSection = true;
            var n = r.ReadCount();
            for (var i = 0; i < n; i++) functionTypes.Add((int)Math.Min(r.ReadU32(), int.MaxValue));
            declaredFunctions = n;
        }

        private void ReadTables(ref WasmReader r)
        {
            var n = r.ReadCount();
            for (var i = 0; i < n; i++) tables.Add(ReadTableType(ref r));
        }

        private void ReadMemories(ref WasmReader r)
        {
            var n = r.ReadCount();
            for (var i = 0; i < n; i++) memories.Add(ReadMemoryType(ref r));
        }

        private void ReadGlobals(ref WasmReader r)
        {
            var n = r.ReadCount();
            for (var i = 0; i < n; i++)
            {
                var gt = ReadGlobalType(ref r);
                var init = ReadConstExpr(ref r);
                globalTypes.Add(gt);
                globals.Add(new Global(gt, init));
            }
        }

        private void ReadExports(ref WasmReader r)
        {
            var n = r.ReadCount();
            var list = ImmutableArray.CreateBuilder<Export>(n);
            for (var i = 0; i < n; i++)
            {
                var name = r.ReadName();
                var kind = r.ReadByte();
                if (kind > 3) r.FailAt("malformed export kind", r.Position - 1);
                var index = (int)Math.Min(r.ReadU32(), int.MaxValue);
                list.Add(new Export(name, (ExternalKind)kind, index));
            }
            exports = list.MoveToImmutable();
        }

        /// <summary>Reads a constant expression up to its end opcode, keeping its bytes for the validator.</summary>
        private ConstExpr ReadConstExpr(ref WasmReader r)
        {
            var startPos = r.Position;
            var startOffset = r.FileOffset;
            var remaining = r.Remaining;
            var ir = new InstructionReader(r.ReadBytes(remaining), startOffset, Memory64, r.Section);
            var ins = default(Instruction);
            while (true)
            {
                ir.Read(ref ins);
                if (ins.Opcode == 0x0B) break;
            }
            var length = ir.Position;
            r.Seek(startPos + length);
            return new ConstExpr(startOffset, bytes.Slice(startOffset, length));
        }

        private void ReadElements(ref WasmReader r)
        {
            var n = r.ReadCount();
            var list = ImmutableArray.CreateBuilder<ElementSegment>(n);
            for (var i = 0; i < n; i++)
            {
                var flags = r.ReadU32();
                if (flags > 7) r.Fail("malformed elements segment kind");
                var mode = (flags & 1) == 0 ? SegmentMode.Active : (flags & 2) == 0 ? SegmentMode.Passive : SegmentMode.Declarative;
                var tableIndex = 0;
                ConstExpr offset = default;
                if (mode == SegmentMode.Active)
                {
                    if ((flags & 2) != 0) tableIndex = (int)Math.Min(r.ReadU32(), int.MaxValue);
                    offset = ReadConstExpr(ref r);
                }
                var usesExprs = (flags & 4) != 0;
                var elementType = ValueType.FuncRef;
                if ((flags & 3) != 0)
                {
                    if (usesExprs)
                    {
                        elementType = ReadRefType(ref r);
                    }
                    else
                    {
                        var kind = r.ReadByte();
                        if (kind != 0) r.FailAt("malformed element kind", r.Position - 1);
                    }
                }
                var count = r.ReadCount();
                var items = ImmutableArray.CreateBuilder<ElementItem>(count);
                for (var k = 0; k < count; k++)
                {
                    items.Add(usesExprs
                        ? new ElementItem(-1, ReadConstExpr(ref r))
                        : new ElementItem((int)Math.Min(r.ReadU32(), int.MaxValue), default));
                }
                list.Add(new ElementSegment(mode, tableIndex, offset, elementType, items.MoveToImmutable()));
            }
            elements = list.MoveToImmutable();
        }

        private void ReadCode(ref WasmReader r)
        {
            sawCodeSection = true;
            var n = r.ReadCount();
            if (n != declaredFunctions) r.Fail("function and code section have inconsistent lengths");
            var list = ImmutableArray.CreateBuilder<FunctionBody>(n);
            for (var i = 0; i < n; i++)
            {
                var size = r.ReadCount();
                var bodyOffset = r.FileOffset;
                var body = r.ReadBytes(size);
                var br = new WasmReader(body, bodyOffset, "code") { EndMessage = "unexpected end of section or function" };
                var groupCount = br.ReadCount();
                var groups = ImmutableArray.CreateBuilder<LocalGroup>(groupCount);
                ulong total = 0;
                for (var g = 0; g < groupCount; g++)
                {
                    var count = br.ReadU32();
                    total += count;
                    if (total > MaxLocals) br.Fail("too many locals");
                    var t = ReadValueType(ref br);
                    groups.Add(new LocalGroup(count, t));
                }
                if (br.AtEnd || body[^1] != 0x0B) br.FailAt("END opcode expected", size);
                var codeOffset = bodyOffset + br.Position;
                list.Add(new FunctionBody(groups.MoveToImmutable(), (int)total, codeOffset, bytes.Slice(codeOffset, size - br.Position)));
            }
            bodies = list.MoveToImmutable();
        }

        private void ReadData(ref WasmReader r)
        {
            var n = r.ReadCount();
            var list = ImmutableArray.CreateBuilder<DataSegment>(n);
            for (var i = 0; i < n; i++)
            {
                var flags = r.ReadU32();
                SegmentMode mode;
                var memoryIndex = 0;
                ConstExpr offset = default;
                switch (flags)
                {
                    case 0:
                        mode = SegmentMode.Active;
                        offset = ReadConstExpr(ref r);
                        break;
                    case 1:
                        mode = SegmentMode.Passive;
                        break;
                    case 2:
                        mode = SegmentMode.Active;
                        memoryIndex = (int)Math.Min(r.ReadU32(), int.MaxValue);
                        offset = ReadConstExpr(ref r);
                        break;
                    default:
                        r.Fail("malformed data segment kind");
                        return;
                }
                var length = r.ReadCount();
                var at = r.FileOffset;
                r.ReadBytes(length);
                list.Add(new DataSegment(mode, memoryIndex, offset, bytes.Slice(at, length)));
            }
            data = list.MoveToImmutable();
        }
    }
}
