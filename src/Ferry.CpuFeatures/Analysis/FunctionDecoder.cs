using Ferry.CpuFeatures.Features;
using Iced.Intel;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Recursive-descent disassembly of one function into runs (the hot path). Only code reachable from the entry
/// by direct jumps, branches and recognised jump tables is decoded, so padding and data in code sections are
/// never mistaken for instructions. Per instruction: one Iced decode into a reused struct, one table lookup for
/// features, a few flag tests; nothing is allocated.
/// </summary>
internal sealed unsafe class FunctionDecoder
{
    public const int MaxRuns = 100_000;
    public const int MaxInstructions = 2_000_000;
    private const int MaxTableEntries = 4096;
    /// <summary>
    /// Tables whose size no guarding compare gives are read only while every target is an instruction
    /// boundary of a linear decode of the function (to its symbol's end, else to the next known entry):
    /// entries past a table's end are other data whose "targets" land mid-instruction.
    /// </summary>
    private const int UnboundedTableEntries = 1024;
    /// <summary>Instruction starts of the linear decode, one bit per byte from <see cref="_boundariesOf"/>.</summary>
    private ulong[] _boundaries = new ulong[64];
    private ulong _boundariesOf = ulong.MaxValue;
    private ulong _boundariesEnd;
    private bool _boundariesValid;
    private const ulong NoTarget = ulong.MaxValue;

    private readonly BinaryContext _context;
    private readonly CodeSpace _code;
    private readonly FeatureVariables _variables;
    private readonly PointerCodeReader _reader;
    private readonly Decoder _decoder;
    private readonly FunctionGraph _graph = new();
    private readonly Stack<(ulong Target, int Predecessor)> _work = new();
    private readonly ulong[] _startFilter = new ulong[64];
    private readonly Instruction[] _history = new Instruction[64];
    /// <summary>Start addresses of the last eight instructions of the current run (a jump table's setup is
    /// re-decoded from here instead of from the run's start).</summary>
    private readonly ulong[] _recent = new ulong[8];
    private int _recentCount;
    private (ulong Start, ulong End)[] _pltRanges = [];
    private readonly Dictionary<ulong, GotSlot?> _pltStubs = [];
    private readonly HashSet<ulong> _tableTargets = [];

    /// <summary>The address of the instruction being classified (edges and sources record where they are).</summary>
    private ulong _at;

    public FunctionDecoder(BinaryContext context, FeatureVariables variables)
    {
        _context = context;
        _code = context.Code;
        _variables = variables;
        _reader = new PointerCodeReader(context.File.Image.Pointer);
        _decoder = Decoder.Create(64, _reader, DecoderOptions.None);
        _pltRanges = [.. context.Code.Sections.Where(s => s.Name.StartsWith(".plt", StringComparison.Ordinal)).Select(s => (s.Address, s.End))];
    }

    public FunctionGraph Graph => _graph;

    /// <summary>Decodes the function at <paramref name="entry"/>; <paramref name="size"/> bounds it when a symbol gives one.</summary>
    public FunctionGraph Decode(ulong entry, ulong size)
    {
        var g = _graph;
        g.Reset(entry);
        Array.Clear(_startFilter);
        _work.Clear();
        _work.Push((entry, -1));
        ulong bound = size > 0 ? entry + size : ulong.MaxValue;
        while (_work.Count > 0)
        {
            var (start, predecessor) = _work.Pop();
            if (g.RunByStart.TryGet(start, out _))
            {
                continue;
            }
            if (g.RunCount >= MaxRuns || g.Instructions >= MaxInstructions)
            {
                g.Truncated = true;
                break;
            }
            int section = _code.Find(start);
            if (section >= 0)
            {
                DecodeRun(start, predecessor, section, entry, bound);
            }
        }
        g.ResolveSuccessors();
        return g;
    }

    /// <summary>Decodes the instructions of one run again (for data-flow and jump tables) into <paramref name="into"/>.</summary>
    public int Redecode(in Run run, Instruction[] into) => DecodeRange(run.Start, run.End, into);

    /// <summary>Decodes one run into a span sized for it (at most one instruction per byte).</summary>
    public int Redecode(in Run run, Span<Instruction> into)
    {
        int section = _code.Find(run.Start);
        if (section < 0)
        {
            return 0;
        }
        Seek(section, run.Start);
        int count = 0;
        while (_decoder.IP < run.End && count < into.Length)
        {
            _decoder.Decode(out into[count]);
            if (into[count].IsInvalid)
            {
                break;
            }
            count++;
        }
        return count;
    }

    /// <summary>Decodes [from, to) into a ring buffer; returns how many instructions there were.</summary>
    private int DecodeRange(ulong from, ulong to, Instruction[] into)
    {
        int section = _code.Find(from);
        if (section < 0)
        {
            return 0;
        }
        Seek(section, from);
        int count = 0;
        while (_decoder.IP < to)
        {
            _decoder.Decode(out into[count % into.Length]);
            if (into[count % into.Length].IsInvalid)
            {
                break;
            }
            count++;
        }
        return count;
    }

    private void Seek(int section, ulong address)
    {
        var s = _code.Section(section);
        _reader.Seek((int)(s.Offset + (address - s.Address)), (int)(s.Offset + s.Size));
        _decoder.IP = address;
    }

    private void DecodeRun(ulong start, int predecessor, int sectionIndex, ulong entry, ulong bound)
    {
        var g = _graph;
        int index = g.AddRun(start, predecessor);
        _startFilter[(start >> 6) & 63] |= 1UL << (int)(start & 63);
        ref Run run = ref g.Runs[index];
        var section = _code.Section(sectionIndex);
        Seek(sectionIndex, start);

        var features = FeatureSet.Empty;
        var seen = FeatureSet.Empty;
        ulong pos = start;
        _recentCount = 0;
        Instruction instruction = default;
        run.EndKind = RunEnd.Stop;
        while (true)
        {
            if (pos >= section.End || pos >= bound)
            {
                g.Implausible |= pos >= section.End;
                break;
            }
            if (pos != start)
            {
                if ((_startFilter[(pos >> 6) & 63] & (1UL << (int)(pos & 63))) != 0 && g.RunByStart.TryGet(pos, out _))
                {
                    g.AddSuccessor(ref run, pos);
                    run.EndKind = RunEnd.FallThrough;
                    break;
                }
                if (pos != entry && _code.IsEntry(sectionIndex, pos))
                {
                    g.AddEdge(ref run, pos, EdgeKind.Tail, pos);
                    run.EndKind = RunEnd.Tail;
                    break;
                }
            }
            _decoder.Decode(out instruction);
            if (instruction.IsInvalid || InstructionTraits.IsImplausible(instruction.Code))
            {
                g.Implausible = true;
                break;
            }
            g.Instructions++;
            _at = instruction.IP;
            _recent[_recentCount++ & 7] = _at;
            var needed = IcedFeatureMap.For(instruction.Code);
            features |= needed;
            if (!(needed - seen).IsEmpty)
            {
                RecordExamples(needed - seen, pos, index);
                seen |= needed;
            }
            pos = instruction.NextIP;
            if (instruction.IsIPRelativeMemoryOperand)
            {
                if (ClassifyRipOperand(ref run, in instruction))
                {
                    break;
                }
            }
            else if (!_context.IsPositionIndependent && IsImmediateAddressLoad(instruction.Code))
            {
                ulong value = instruction.GetImmediate(instruction.OpCount - 1);
                if (_code.Contains(value))
                {
                    g.AddEdge(ref run, value, EdgeKind.AddressTaken, _at);
                }
            }

            switch (instruction.FlowControl)
            {
                case FlowControl.Next:
                    if (instruction.Code is Code.Cpuid or Code.Xgetbv)
                    {
                        run.MarkSource(instruction.IP);
                    }
                    else if (instruction.Code == Code.Hlt)
                    {
                        goto done;
                    }
                    continue;
                case FlowControl.Call:
                    if (instruction.Op0Kind == OpKind.NearBranch64)
                    {
                        if (HandleDirectCall(ref run, instruction.NearBranch64))
                        {
                            goto done;
                        }
                    }
                    continue;
                case FlowControl.IndirectCall:
                    continue; // GOT calls were handled with the RIP-relative operand.
                case FlowControl.UnconditionalBranch:
                    if (instruction.Op0Kind == OpKind.NearBranch64)
                    {
                        AddJump(ref run, index, instruction.NearBranch64, entry, bound, isBranch: false);
                        run.EndKind = RunEnd.Jump;
                    }
                    goto done;
                case FlowControl.ConditionalBranch:
                    AddJump(ref run, index, instruction.NearBranch64, entry, bound, isBranch: true);
                    g.AddSuccessor(ref run, pos);
                    _work.Push((pos, index));
                    run.EndKind = RunEnd.Branch;
                    goto done;
                case FlowControl.XbeginXabortXend:
                    if (instruction.Code is Code.Xbegin_rel32 or Code.Xbegin_rel16)
                    {
                        AddJump(ref run, index, instruction.NearBranch64, entry, bound, isBranch: true);
                        g.AddSuccessor(ref run, pos);
                        _work.Push((pos, index));
                        run.EndKind = RunEnd.Jump;
                        goto done;
                    }
                    continue;
                case FlowControl.IndirectBranch:
                    run.EndKind = instruction.IsIPRelativeMemoryOperand ? RunEnd.Tail : RunEnd.IndirectJump;
                    run.End = pos;
                    run.Last = instruction.IP;
                    run.Penultimate = _recentCount > 1 ? _recent[(_recentCount - 2) & 7] : 0;
                    if (run.EndKind == RunEnd.IndirectJump)
                    {
                        ResolveJumpTable(index, in instruction, sectionIndex, entry, bound);
                    }
                    goto done;
                case FlowControl.Return:
                    run.EndKind = RunEnd.Return;
                    goto done;
                default: // Interrupt (INT3, INT n), Exception (UD0/1/2)
                    goto done;
            }
        }
    done:
        run = ref g.Runs[index];
        run.End = pos;
        run.Last = instruction.IP;
        run.Penultimate = _recentCount > 1 ? _recent[(_recentCount - 2) & 7] : 0;
        run.Features = features;
        if (pos > start)
        {
            _code.MarkCovered(sectionIndex, start, pos);
        }
    }

    private static bool IsImmediateAddressLoad(Code code) =>
        code is Code.Mov_r32_imm32 or Code.Mov_r64_imm64 or Code.Mov_rm64_imm32 or Code.Mov_rm32_imm32 or Code.Pushq_imm32;

    private void RecordExamples(FeatureSet added, ulong address, int run)
    {
        added -= CpuFeatureInfo.Baseline;
        while (!added.IsEmpty)
        {
            var feature = added.First();
            _graph.Examples.Add((feature, address, run));
            added -= FeatureSet.Of(feature);
        }
    }

    /// <summary>Handles a RIP-relative memory operand; returns true when the run ends here (jump or no-return call via the GOT).</summary>
    private bool ClassifyRipOperand(ref Run run, in Instruction instruction)
    {
        var g = _graph;
        ulong address = instruction.IPRelativeMemoryAddress;
        var flow = instruction.FlowControl;
        if (flow is FlowControl.IndirectCall or FlowControl.IndirectBranch)
        {
            bool isJump = flow == FlowControl.IndirectBranch;
            if (_context.TryGetGotSlot(address, out var slot))
            {
                return AddGotTransfer(ref run, slot, isJump);
            }
            return false;
        }
        if (instruction.Mnemonic == Mnemonic.Lea)
        {
            if (_code.Contains(address))
            {
                g.AddEdge(ref run, address, EdgeKind.AddressTaken, _at);
            }
            else
            {
                if (_context.IsWritableData(address))
                {
                    g.AddDataRead(address);
                    g.AddEdge(ref run, address, EdgeKind.DataRef, _at);
                }
                if (_context.IsFeatureData(address, _variables))
                {
                    run.MarkSource(_at);
                }
            }
            return false;
        }
        if (_context.IsWritableData(address))
        {
            g.AddDataRead(address);
        }
        if (_context.IsFeatureData(address, _variables))
        {
            run.MarkSource(_at);
        }
        else if (_context.TryGetGotSlot(address, out var slot) && slot.Kind == GotSlotKind.Local)
        {
            // A function pointer loaded from the GOT.
            g.AddEdge(ref run, slot.Target, EdgeKind.AddressTaken, _at);
        }
        return false;
    }

    private bool AddGotTransfer(ref Run run, GotSlot slot, bool isJump)
    {
        var g = _graph;
        switch (slot.Kind)
        {
            case GotSlotKind.Import:
                g.AddEdge(ref run, 0, EdgeKind.Import, _at, slot.Name);
                if (BinaryContext.IsFeatureFunctionName(slot.Name))
                {
                    run.MarkSource(_at);
                }
                return BinaryContext.IsNoReturnName(slot.Name);
            case GotSlotKind.Local:
                g.AddEdge(ref run, slot.Target, isJump ? EdgeKind.Tail : EdgeKind.Call, _at);
                if (_context.IsFeatureFunction(slot.Target))
                {
                    run.MarkSource(_at);
                }
                return !isJump && _context.IsNoReturn(slot.Target);
            default:
                // IRELATIVE: the loader stores the resolver's choice; the resolver is a root and its
                // candidates are reached (gated) from it, so the call site adds nothing.
                return false;
        }
    }

    /// <summary>Records a direct call; returns true when the callee never returns.</summary>
    private bool HandleDirectCall(ref Run run, ulong target)
    {
        var g = _graph;
        var stub = PltStub(target);
        if (stub is { } slot)
        {
            return AddGotTransfer(ref run, slot, isJump: false);
        }
        g.AddEdge(ref run, target, EdgeKind.Call, _at);
        if (_context.IsFeatureFunction(target))
        {
            run.MarkSource(_at);
        }
        return _context.IsNoReturn(target);
    }

    /// <summary>Whether a direct call target is a PLT stub of a feature accessor such as __get_cpu_features.</summary>
    public bool IsFeatureImportStub(ulong target) =>
        PltStub(target) is { Kind: GotSlotKind.Import } slot && BinaryContext.IsFeatureFunctionName(slot.Name);

    /// <summary>A PLT stub is `[endbr64] [bnd] jmp [rip+slot]`; returns that slot, cached per stub.</summary>
    private GotSlot? PltStub(ulong target)
    {
        bool inPlt = false;
        foreach (var (start, end) in _pltRanges)
        {
            inPlt |= target >= start && target < end;
        }
        if (!inPlt)
        {
            return null;
        }
        if (_pltStubs.TryGetValue(target, out var cached))
        {
            return cached;
        }
        GotSlot? result = null;
        int section = _code.Find(target);
        if (section >= 0 && _code.Section(section).Name.StartsWith(".plt", StringComparison.Ordinal))
        {
            ulong resume = _decoder.IP;
            int resumePosition = _reader.Position, resumeLimit = _reader.Limit;
            Seek(section, target);
            for (int i = 0; i < 2; i++)
            {
                _decoder.Decode(out var stubInstruction);
                if (stubInstruction.Code == Code.Endbr64)
                {
                    continue;
                }
                if (stubInstruction.FlowControl == FlowControl.IndirectBranch && stubInstruction.IsIPRelativeMemoryOperand
                    && _context.TryGetGotSlot(stubInstruction.IPRelativeMemoryAddress, out var slot))
                {
                    result = slot;
                }
                break;
            }
            _reader.Seek(resumePosition, resumeLimit);
            _decoder.IP = resume;
        }
        _pltStubs[target] = result;
        return result;
    }

    private void AddJump(ref Run run, int runIndex, ulong target, ulong entry, ulong bound, bool isBranch)
    {
        var g = _graph;
        int section = _code.Find(target);
        bool leaves = section < 0
            || (target != entry && _code.IsEntry(section, target))
            || (bound != ulong.MaxValue && (target < entry || target >= bound));
        if (leaves)
        {
            int edgesBefore = g.EdgeCount;
            if (section >= 0)
            {
                var stub = PltStub(target);
                if (stub is { } slot)
                {
                    AddGotTransfer(ref run, slot, isJump: true);
                }
                else
                {
                    g.AddEdge(ref run, target, EdgeKind.Tail, _at);
                }
            }
            // Keep the successor slot so a branch's taken side stays successor 0.
            g.AddSuccessor(ref run, NoTarget);
            if (isBranch && g.EdgeCount > edgesBefore)
            {
                g.Edges[g.EdgeCount - 1] = g.Edges[g.EdgeCount - 1] with { TakenSide = true };
            }
            return;
        }
        g.AddSuccessor(ref run, target);
        _work.Push((target, runIndex));
    }

    /// <summary>
    /// Recognises the jump tables GCC and Clang emit and adds their targets as successors:
    /// `lea rB,[rip+T]; movsxd rA,[rB+rI*4]; add rA,rB; jmp rA` (PIC, 32-bit offsets from T),
    /// `jmp [T+rI*8]` and `mov rA,[T+rI*8]; jmp rA` (absolute entries). The entry count comes from the
    /// `cmp rI,N; ja default` guarding it; without one, entries are read until one points outside the function.
    /// </summary>
    private void ResolveJumpTable(int runIndex, in Instruction jump, int sectionIndex, ulong entry, ulong bound)
    {
        var g = _graph;
        // The setup sits right before the jump: re-decode the last (up to) eight instructions only.
        ulong from = _recentCount > 8 ? _recent[_recentCount & 7] : g.Runs[runIndex].Start;
        int count = DecodeRange(from, g.Runs[runIndex].End, _history);
        int first = Math.Max(0, count - _history.Length);
        ulong table = 0;
        int entrySize = 0;
        bool relative = false;
        var index = Register.None;

        if (jump.Op0Kind == OpKind.Memory && jump.MemoryBase == Register.None && jump.MemoryIndexScale == 8)
        {
            table = jump.MemoryDisplacement64;
            entrySize = 8;
            index = jump.MemoryIndex.GetFullRegister();
        }
        else if (jump.Op0Kind == OpKind.Register)
        {
            var target = jump.Op0Register.GetFullRegister();
            var baseRegister = Register.None;
            for (int i = count - 2; i >= first && table == 0; i--)
            {
                ref var ins = ref _history[i % _history.Length];
                if (ins.Op0Kind != OpKind.Register)
                {
                    continue;
                }
                var dest = ins.Op0Register.GetFullRegister();
                if (ins.Mnemonic == Mnemonic.Add && dest == target && ins.Op1Kind == OpKind.Register)
                {
                    baseRegister = ins.Op1Register.GetFullRegister();
                }
                else if (ins.Mnemonic is Mnemonic.Movsxd or Mnemonic.Mov && dest == target && ins.Op1Kind == OpKind.Memory)
                {
                    if (ins.Mnemonic == Mnemonic.Movsxd && ins.MemoryIndexScale == 4)
                    {
                        relative = true;
                        entrySize = 4;
                        baseRegister = ins.MemoryBase.GetFullRegister();
                        index = ins.MemoryIndex.GetFullRegister();
                        table = FindLea(baseRegister, i, first);
                    }
                    else if (ins.Mnemonic == Mnemonic.Mov && ins.MemoryIndexScale == 8)
                    {
                        entrySize = 8;
                        index = ins.MemoryIndex.GetFullRegister();
                        table = ins.MemoryBase == Register.None ? ins.MemoryDisplacement64 : FindLea(ins.MemoryBase.GetFullRegister(), i, first);
                    }
                    break;
                }
            }
        }
        if (table == 0 || entrySize == 0)
        {
            return;
        }
        // The guarding compare sits right before this run; it only bounds the index if the run is short enough
        // to be fully in view and nothing in it recomputes the index (an unguarded table — e.g. a switch over an
        // enum the compiler knows is covered — otherwise borrows some unrelated compare as its bound).
        bool indexKept = _recentCount <= 8 && !RedefinesIndex(count, first, index);
        int? guard = indexKept ? TableBound(runIndex, index) : null;
        bool bounded = guard is > 0;
        // Without a symbol size, the function is taken to end at the next known entry.
        ulong extent = bound != ulong.MaxValue ? bound : _code.NextEntryAfter(sectionIndex, entry);
        if (!bounded && (_code.Find(entry) != sectionIndex || !LinearBoundaries(entry, extent, sectionIndex)))
        {
            return;
        }
        int limit = bounded ? Math.Min(guard!.Value, MaxTableEntries) : UnboundedTableEntries;
        _tableTargets.Clear();
        ref Run run = ref g.Runs[runIndex];
        for (int i = 0; i < limit; i++)
        {
            ulong slot = table + (ulong)(i * entrySize);
            ulong target;
            if (relative)
            {
                if (!_context.File.TryReadInt32(slot, out int offset))
                {
                    break;
                }
                target = table + (ulong)(long)offset;
            }
            else if (_context.TryGetGotSlot(slot, out var got) && got.Kind == GotSlotKind.Local)
            {
                target = got.Target;
            }
            else if (!_context.File.TryReadUInt64(slot, out target))
            {
                break;
            }
            bool inside = _code.Find(target) == sectionIndex && (bound == ulong.MaxValue || (target >= entry && target < bound))
                && (bounded || IsBoundary(target));
            if (!inside)
            {
                if (bounded)
                {
                    continue;
                }
                break;
            }
            if (_tableTargets.Add(target))
            {
                g.AddSuccessor(ref run, target);
                _work.Push((target, runIndex));
            }
        }
    }

    /// <summary>Instruction starts of a linear decode of [entry, end) (cached for the current function);
    /// false when that decode meets an invalid encoding (data inside the function: no safe boundaries).</summary>
    private bool LinearBoundaries(ulong entry, ulong end, int section)
    {
        if (_boundariesOf == entry)
        {
            return _boundariesValid;
        }
        _boundariesOf = entry;
        _boundariesEnd = end;
        _boundariesValid = false;
        if (end <= entry || end - entry > 1 << 20)
        {
            return false;
        }
        int words = (int)((end - entry + 63) / 64);
        if (_boundaries.Length < words)
        {
            _boundaries = new ulong[Math.Max(words, _boundaries.Length * 2)];
        }
        Array.Clear(_boundaries, 0, words);
        Seek(section, entry);
        while (_decoder.IP < end)
        {
            ulong offset = _decoder.IP - entry;
            _decoder.Decode(out var instruction);
            if (instruction.IsInvalid)
            {
                return false;
            }
            _boundaries[offset >> 6] |= 1UL << (int)(offset & 63);
        }
        _boundariesValid = true;
        return true;
    }

    private bool IsBoundary(ulong target)
    {
        if (!_boundariesValid || target < _boundariesOf || target >= _boundariesEnd)
        {
            return false;
        }
        ulong offset = target - _boundariesOf;
        return (_boundaries[offset >> 6] & (1UL << (int)(offset & 63))) != 0;
    }

    private bool RedefinesIndex(int count, int first, Register index)
    {
        for (int i = first; i < count - 1; i++)
        {
            ref var ins = ref _history[i % _history.Length];
            if (ins.Op0Kind != OpKind.Register || ins.Op0Register.GetFullRegister() != index)
            {
                continue;
            }
            // `mov eax, eax` only zero-extends the compared value.
            bool zeroExtend = ins.Mnemonic == Mnemonic.Mov && ins.Op1Kind == OpKind.Register && ins.Op1Register.GetFullRegister() == index;
            if (!zeroExtend && ins.Mnemonic is not (Mnemonic.Cmp or Mnemonic.Test))
            {
                return true;
            }
        }
        return false;
    }

    private ulong FindLea(Register register, int before, int first)
    {
        for (int i = before - 1; i >= first; i--)
        {
            ref var ins = ref _history[i % _history.Length];
            if (ins.Mnemonic == Mnemonic.Lea && ins.Op0Kind == OpKind.Register && ins.Op0Register.GetFullRegister() == register
                && ins.IsIPRelativeMemoryOperand)
            {
                return ins.IPRelativeMemoryAddress;
            }
        }
        return 0;
    }

    /// <summary>The `cmp reg, N` + `ja`/`jae` (or `jbe`/`jb`) ending the predecessor run gives the table size.</summary>
    private int? TableBound(int runIndex, Register index)
    {
        var g = _graph;
        int predecessor = g.Runs[runIndex].Predecessor;
        if (predecessor < 0 || g.Runs[predecessor].EndKind != RunEnd.Branch || g.Runs[predecessor].Penultimate == 0)
        {
            return null;
        }
        ref var p = ref g.Runs[predecessor];
        int count = DecodeRange(p.Penultimate, p.End, _history);
        if (count < 2)
        {
            return null;
        }
        ref var branch = ref _history[(count - 1) % _history.Length];
        ref var compare = ref _history[(count - 2) % _history.Length];
        // The compare must bound the register that indexes the table, or it bounds something else.
        if (compare.Mnemonic != Mnemonic.Cmp || compare.Op0Kind != OpKind.Register || compare.Op0Register.GetFullRegister() != index
            || compare.Op1Kind is not (OpKind.Immediate8 or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32 or OpKind.Immediate32to64))
        {
            return null;
        }
        long limit = (long)compare.GetImmediate(1);
        return branch.ConditionCode switch
        {
            ConditionCode.a or ConditionCode.be => (int)Math.Min(limit + 1, MaxTableEntries),
            ConditionCode.ae or ConditionCode.b => (int)Math.Min(limit, MaxTableEntries),
            _ => null,
        };
    }
}
