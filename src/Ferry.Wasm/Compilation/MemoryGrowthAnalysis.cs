using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Which functions may grow linear memory (directly with memory.grow, or through anything they call). After a
/// call to a function that cannot, compiled code keeps its cached memory size instead of reloading it — most
/// calls in C programs (anything that does not reach malloc) qualify. Calls to imports are treated as growing
/// memory when it is shared (imported or exported), since another module or the host could then grow it;
/// call_indirect is assumed to reach any function of the module.
/// </summary>
internal static class MemoryGrowthAnalysis
{
    /// <summary>
    /// Which functions can be frozen inside (so calls to them need the check after the call): those with a loop,
    /// or calling anything that can (imports — host calls may give up for a freeze — and call_indirect count as
    /// such). The rest run in bounded time, so they need no safe points at all: freezing simply happens at the
    /// caller's next one.
    /// </summary>
    public static bool[] CanUnwind(Module module)
    {
        var n = module.FunctionCount;
        var can = new bool[n];
        for (var f = 0; f < module.ImportedFunctionCount; f++) can[f] = true;
        var callees = new List<int>[n];
        var ins = default(Instruction);
        var memory64 = module.Memories.Length > 0 && module.Memories[0].Is64;
        for (var f = module.ImportedFunctionCount; f < n; f++)
        {
            var body = module.Bodies[f - module.ImportedFunctionCount];
            var list = callees[f] = [];
            var r = new InstructionReader(body.Code.Span, body.CodeOffset, memory64, "code");
            while (!r.AtEnd && !can[f])
            {
                r.Read(ref ins);
                switch (ins.Opcode)
                {
                    case 0x03: can[f] = true; break;
                    case 0x11: can[f] = true; break;
                    case 0x10: list.Add((int)ins.Index); break;
                }
            }
        }
        for (var changed = true; changed;)
        {
            changed = false;
            for (var f = module.ImportedFunctionCount; f < n; f++)
            {
                if (can[f] || !callees[f].Any(c => can[c])) continue;
                can[f] = true;
                changed = true;
            }
        }
        return can;
    }

    public static bool[] Analyze(Module module)
    {
        var n = module.FunctionCount;
        var grows = new bool[n];
        if (module.Memories.Length == 0) return grows;
        var callees = new List<int>[n];
        var indirect = new bool[n];
        var ins = default(Instruction);
        var memory64 = module.Memories[0].Is64;
        var shared = module.ImportedMemoryCount > 0 || module.Exports.Any(e => e.Kind == ExternalKind.Memory);
        for (var f = module.ImportedFunctionCount; f < n; f++)
        {
            var body = module.Bodies[f - module.ImportedFunctionCount];
            var list = callees[f] = [];
            var r = new InstructionReader(body.Code.Span, body.CodeOffset, memory64, "code");
            while (!r.AtEnd)
            {
                r.Read(ref ins);
                switch (ins.Opcode)
                {
                    case 0x40: grows[f] = true; break;
                    case 0x10:
                        if (ins.Index >= module.ImportedFunctionCount) list.Add((int)ins.Index);
                        else if (shared) grows[f] = true;
                        break;
                    case 0x11: indirect[f] = true; break;
                }
            }
        }
        var anyGrows = true;
        for (var changed = true; changed;)
        {
            changed = false;
            anyGrows = false;
            for (var f = module.ImportedFunctionCount; f < n; f++) anyGrows |= grows[f];
            for (var f = module.ImportedFunctionCount; f < n; f++)
            {
                if (grows[f]) continue;
                if ((indirect[f] && anyGrows) || callees[f].Any(c => grows[c]))
                {
                    grows[f] = true;
                    changed = true;
                }
            }
        }
        return grows;
    }
}
