using System.Diagnostics.CodeAnalysis;
using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Validation;

/// <summary>
/// Validates a decoded module against the WebAssembly 2.0 + memory64 typing rules. Independent of any
/// execution engine: compilers may assume a validated module.
/// </summary>
public static class ModuleValidator
{
    public static void Validate(Module module)
    {
        var ctx = new ValidationContext(module);
        try
        {
            ctx.ValidateModule();
        }
        catch (InvalidModuleException)
        {
            // The spec decodes the whole module before validating any of it, so a binary-format error anywhere
            // in the code wins over a type error found earlier. Bodies are only decoded fully on this path.
            BodyScanner.CheckWellFormed(module);
            throw;
        }
    }
}

/// <summary>Everything validation needs to know about the module while checking it.</summary>
internal sealed class ValidationContext
{
    public ValidationContext(Module module)
    {
        Module = module;
        DeclaredFunctionRefs = new HashSet<int>();
    }

    public Module Module { get; }

    /// <summary>Functions that may be named by ref.func in code (C.refs): those referenced outside function bodies.</summary>
    public HashSet<int> DeclaredFunctionRefs { get; }

    [DoesNotReturn]
    public static void Fail(string reason, long offset, string where) => throw new InvalidModuleException(reason, offset, where);

    public void ValidateModule()
    {
        var m = Module;
        foreach (var import in m.Imports)
        {
            switch (import.Kind)
            {
                case ExternalKind.Function:
                    if ((uint)import.FunctionTypeIndex >= (uint)m.Types.Length) Fail("unknown type", 0, $"import {import.Module}.{import.Name}");
                    break;
                case ExternalKind.Table:
                    CheckTableType(import.Table, $"import {import.Module}.{import.Name}");
                    break;
                case ExternalKind.Memory:
                    CheckMemoryType(import.Memory, $"import {import.Module}.{import.Name}");
                    break;
            }
        }
        for (var i = m.ImportedFunctionCount; i < m.FunctionCount; i++)
        {
            if ((uint)m.FunctionTypeIndices[i] >= (uint)m.Types.Length) Fail("unknown type", 0, $"function {i}");
        }
        for (var i = m.ImportedTableCount; i < m.Tables.Length; i++) CheckTableType(m.Tables[i], $"table {i}");
        for (var i = m.ImportedMemoryCount; i < m.Memories.Length; i++) CheckMemoryType(m.Memories[i], $"memory {i}");
        if (m.Memories.Length > 1) Fail("multiple memories", 0, "memory section");

        // C.refs: every function index mentioned in globals, elements and exports.
        foreach (var e in m.Exports)
        {
            if (e.Kind == ExternalKind.Function) DeclaredFunctionRefs.Add(e.Index);
        }
        foreach (var g in m.Globals) CollectRefFuncs(g.Init);
        foreach (var seg in m.Elements)
        {
            foreach (var item in seg.Items)
            {
                if (item.IsFunctionIndex) DeclaredFunctionRefs.Add(item.FunctionIndex);
                else CollectRefFuncs(item.Expr);
            }
        }

        for (var i = 0; i < m.Globals.Length; i++)
        {
            var g = m.Globals[i];
            ConstExprValidator.Validate(this, g.Init, g.Type.Type, $"global {m.ImportedGlobalCount + i}");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in m.Exports)
        {
            if (!names.Add(e.Name)) Fail("duplicate export name", 0, $"export \"{e.Name}\"");
            var count = e.Kind switch
            {
                ExternalKind.Function => m.FunctionCount,
                ExternalKind.Table => m.Tables.Length,
                ExternalKind.Memory => m.Memories.Length,
                _ => m.GlobalTypes.Length,
            };
            if ((uint)e.Index >= (uint)count)
            {
                Fail(e.Kind switch
                {
                    ExternalKind.Function => "unknown function",
                    ExternalKind.Table => "unknown table",
                    ExternalKind.Memory => "unknown memory",
                    _ => "unknown global",
                }, 0, $"export \"{e.Name}\"");
            }
        }

        if (m.StartFunction is { } start)
        {
            if ((uint)start >= (uint)m.FunctionCount) Fail("unknown function", 0, "start section");
            var t = m.FunctionType(start);
            if (t.Parameters.Length != 0 || t.Results.Length != 0) Fail("start function", 0, "start section");
        }

        for (var i = 0; i < m.Elements.Length; i++)
        {
            var seg = m.Elements[i];
            var where = $"element segment {i}";
            if (seg.Mode == SegmentMode.Active)
            {
                if ((uint)seg.TableIndex >= (uint)m.Tables.Length) Fail("unknown table", seg.Offset.Offset, where);
                ConstExprValidator.Validate(this, seg.Offset, ValueType.I32, where);
                if (m.Tables[seg.TableIndex].ElementType != seg.ElementType) Fail("type mismatch", seg.Offset.Offset, where);
            }
            foreach (var item in seg.Items)
            {
                if (item.IsFunctionIndex)
                {
                    if ((uint)item.FunctionIndex >= (uint)m.FunctionCount) Fail("unknown function", 0, where);
                }
                else
                {
                    ConstExprValidator.Validate(this, item.Expr, seg.ElementType, where);
                }
            }
        }

        for (var i = 0; i < m.Data.Length; i++)
        {
            var seg = m.Data[i];
            if (seg.Mode != SegmentMode.Active) continue;
            var where = $"data segment {i}";
            if ((uint)seg.MemoryIndex >= (uint)m.Memories.Length) Fail("unknown memory " + seg.MemoryIndex, seg.Offset.Offset, where);
            ConstExprValidator.Validate(this, seg.Offset, m.Memories[seg.MemoryIndex].Is64 ? ValueType.I64 : ValueType.I32, where);
        }

        var validator = new FunctionValidator(this);
        for (var i = 0; i < m.Bodies.Length; i++)
        {
            validator.Validate(m.ImportedFunctionCount + i);
        }
    }

    private void CollectRefFuncs(ConstExpr expr)
    {
        var r = new InstructionReader(expr.Code.Span, expr.Offset, false, "constant expression");
        var ins = default(Instruction);
        while (!r.AtEnd)
        {
            r.Read(ref ins);
            if (ins.Opcode == 0xD2) DeclaredFunctionRefs.Add((int)Math.Min(ins.Index, int.MaxValue));
        }
    }

    private static void CheckTableType(TableType t, string where)
    {
        if (t.Limits.Max is { } max && t.Limits.Min > max) Fail("size minimum must not be greater than maximum", 0, where);
    }

    private static void CheckMemoryType(MemoryType t, string where)
    {
        var limit = t.Is64 ? MemoryType.MaxPages64 : MemoryType.MaxPages32;
        var message = t.Is64 ? "memory size must be at most 2^48 pages" : "memory size must be at most 65536 pages (4GiB)";
        if (t.Limits.Min > limit) Fail(message, 0, where);
        if (t.Limits.Max is { } max)
        {
            if (max > limit) Fail(message, 0, where);
            if (t.Limits.Min > max) Fail("size minimum must not be greater than maximum", 0, where);
        }
    }
}

/// <summary>Validates constant expressions (global initialisers, segment offsets, element items).</summary>
internal static class ConstExprValidator
{
    public static void Validate(ValidationContext ctx, ConstExpr expr, ValueType expected, string where)
    {
        var m = ctx.Module;
        var r = new InstructionReader(expr.Code.Span, expr.Offset, false, where);
        var ins = default(Instruction);
        var stack = new List<ValueType>(2);
        while (true)
        {
            var info = r.Read(ref ins);
            ValueType pushed;
            switch (ins.Opcode)
            {
                case 0x0B:
                    if (stack.Count != 1 || stack[0] != expected) ValidationContext.Fail("type mismatch", ins.Offset, where);
                    return;
                case 0x41: pushed = ValueType.I32; break;
                case 0x42: pushed = ValueType.I64; break;
                case 0x43: pushed = ValueType.F32; break;
                case 0x44: pushed = ValueType.F64; break;
                case Opcodes.SimdBase + 0x0C: pushed = ValueType.V128; break;
                case 0xD0: pushed = ins.Type; break;
                case 0xD2:
                    if (ins.Index >= (uint)m.FunctionCount) ValidationContext.Fail("unknown function " + ins.Index, ins.Offset, where);
                    pushed = ValueType.FuncRef;
                    break;
                case 0x23:
                    // Only imported, immutable globals may be read by constant expressions (WebAssembly 2.0).
                    if (ins.Index >= (uint)m.ImportedGlobalCount) ValidationContext.Fail("unknown global " + ins.Index, ins.Offset, where);
                    var g = m.GlobalTypes[(int)ins.Index];
                    if (g.Mutable) ValidationContext.Fail("constant expression required", ins.Offset, where);
                    pushed = g.Type;
                    break;
                default:
                    _ = info;
                    ValidationContext.Fail("constant expression required", ins.Offset, where);
                    return;
            }
            stack.Add(pushed);
        }
    }
}
