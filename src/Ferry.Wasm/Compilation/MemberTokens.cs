using System.Reflection;
using System.Reflection.Emit;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Emits calls and field accesses to runtime members (helpers in Ferry.Wasm, the compiled module's methods from a
/// resume module) through metadata tokens cached per dynamic module.
/// </summary>
/// <remarks>
/// Why: <see cref="ILGenerator.Emit(OpCode, MethodInfo)"/> on a method of another assembly rebuilds the member's
/// signature and looks its MemberRef up again on every call — measured at 3–5 µs per emitted call, which made
/// IL emission for SQLite take ~2.8 s, most of it spent re-deriving the tokens of a few hundred helpers. The
/// token of a member is fixed for the life of the module, so it is derived once and emitted as an int.
/// <para/>
/// The catch: given a raw token, the IL generator cannot know a call's stack effect and counts it as zero. For
/// calls that pop more than they push that only overestimates the method's max stack (harmless; the generator
/// clamps it); calls that push more than they pop would make it underestimate, so those — and generic method
/// instantiations, whose MethodSpec tokens the public API does not hand out — take the ordinary path.
/// Field opcodes have fixed stack effects, so fields are always safe.
/// Used from one thread at a time (one module compiles on one thread).
/// </remarks>
internal sealed class MemberTokens(ModuleBuilder module)
{
    private const int OrdinaryPath = 0;

    // Reference equality: MethodBuilder.Equals compares whole signatures, which is what made lookups slow.
    private readonly Dictionary<MethodInfo, int> methods = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<FieldInfo, int> fields = new(ReferenceEqualityComparer.Instance);

    public void Call(ILGenerator il, MethodInfo method)
    {
        // Builders of this module already have cheap MethodDef tokens (and may need fix-ups the generator tracks).
        if (method is MethodBuilder)
        {
            il.Emit(OpCodes.Call, method);
            return;
        }
        if (!methods.TryGetValue(method, out var token))
        {
            token = CanUseToken(method) ? module.GetMethodMetadataToken(method) : OrdinaryPath;
            methods[method] = token;
        }
        if (token == OrdinaryPath) il.Emit(OpCodes.Call, method);
        else il.Emit(OpCodes.Call, token);
    }

    public void Field(ILGenerator il, OpCode opcode, FieldInfo field)
    {
        if (field is FieldBuilder)
        {
            il.Emit(opcode, field);
            return;
        }
        if (!fields.TryGetValue(field, out var token))
        {
            token = module.GetFieldMetadataToken(field);
            fields[field] = token;
        }
        il.Emit(opcode, token);
    }

    private static bool CanUseToken(MethodInfo method)
    {
        if (method.IsGenericMethod || method.ContainsGenericParameters) return false;
        var pushes = method.ReturnType == typeof(void) ? 0 : 1;
        var pops = method.GetParameters().Length + (method.IsStatic ? 0 : 1);
        return pushes <= pops;
    }
}
