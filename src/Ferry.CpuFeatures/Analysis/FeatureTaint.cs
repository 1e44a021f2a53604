using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>What the flags say after an instruction that read feature bits.</summary>
internal enum FlagMeaning : byte
{
    None,
    /// <summary>ZF=1 means the tested feature bit is absent (after TEST/AND/OR of feature bits).</summary>
    ZeroMeansAbsent,
    /// <summary>ZF=1 means every tested bit is present (CMP against the mask just ANDed in).</summary>
    ZeroMeansPresent,
    /// <summary>CF=1 means the bit is present (after BT).</summary>
    CarryMeansPresent,
    /// <summary>Flags depend on feature bits in a way the analysis does not model (CMP with a threshold, arithmetic).</summary>
    Unknown,
}

/// <summary>How a conditional branch relates to a feature test.</summary>
internal enum BranchTest : byte
{
    NotATest,
    /// <summary>Taken when the feature is present: the taken side is gated, the fall-through is the fallback.</summary>
    TakenWhenPresent,
    /// <summary>Taken when the feature is absent: the fall-through is gated.</summary>
    TakenWhenAbsent,
    /// <summary>Depends on features, direction unknown: both sides are gated up to where they join again.</summary>
    Unknown,
}

/// <summary>
/// Register/flag taint at one program point. A tainted general-purpose register holds feature bits (or a
/// pointer to them); <see cref="Inverted"/> marks values whose non-zero means "absent" (after SETE, NOT);
/// <see cref="Vague"/> marks tainted values whose polarity is unknown. Four stack slots are tracked so that
/// -O0 code, which spills every value, still connects its load and its branch.
/// </summary>
internal struct TaintState : IEquatable<TaintState>
{
    public ushort Tainted;
    public ushort Inverted;
    public ushort Vague;
    /// <summary>Tainted registers holding feature bits proper (CPUID output, a masked or SETcc'd test result),
    /// as opposed to any field read through a cpu_features pointer (cache sizes, thresholds).</summary>
    public ushort Bits;
    public FlagMeaning Flags;
    public byte MaskRegister;
    public long MaskValue;
    public SlotArray SlotKeys;
    /// <summary>Registers holding a known data address (from `lea reg, [rip+X]`), so `[reg+d]` resolves.</summary>
    public ushort AddressKnown;
    public AddressArray Addresses;
    public byte SlotCount;
    public byte SlotInverted;

    public readonly bool IsEmpty => Tainted == 0 && SlotCount == 0 && Flags == FlagMeaning.None;

    public readonly bool Equals(TaintState other)
    {
        if (Tainted != other.Tainted || Inverted != other.Inverted || Vague != other.Vague || Bits != other.Bits || Flags != other.Flags
            || SlotCount != other.SlotCount || SlotInverted != other.SlotInverted || AddressKnown != other.AddressKnown)
        {
            return false;
        }
        for (int i = 0; i < SlotCount; i++)
        {
            if (SlotKeys[i] != other.SlotKeys[i])
            {
                return false;
            }
        }
        return true;
    }

    public override readonly bool Equals(object? obj) => obj is TaintState other && Equals(other);

    public override readonly int GetHashCode() => HashCode.Combine(Tainted, Inverted, Vague, Flags, SlotCount);

    /// <summary>The union of two states flowing into the same run; disagreements become vague.</summary>
    public static TaintState Merge(in TaintState a, in TaintState b)
    {
        var m = a;
        m.Tainted = (ushort)(a.Tainted | b.Tainted);
        m.Vague = (ushort)(a.Vague | b.Vague | (a.Inverted ^ b.Inverted) | (a.Tainted ^ b.Tainted));
        m.Inverted = (ushort)(a.Inverted & b.Inverted);
        m.Vague &= m.Tainted;
        m.Bits = (ushort)(a.Bits | b.Bits);
        m.AddressKnown = (ushort)(a.AddressKnown & b.AddressKnown);
        for (int r = 0; r < 16; r++)
        {
            if ((m.AddressKnown & (1 << r)) != 0 && a.Addresses[r] != b.Addresses[r])
            {
                m.AddressKnown &= (ushort)~(1 << r);
            }
        }
        m.Flags = a.Flags == b.Flags ? a.Flags : (a.Flags == FlagMeaning.None ? b.Flags : b.Flags == FlagMeaning.None ? a.Flags : FlagMeaning.Unknown);
        for (int i = 0; i < b.SlotCount; i++)
        {
            m.SetSlot(b.SlotKeys[i], (b.SlotInverted & (1 << i)) != 0);
        }
        return m;
    }

    public readonly int FindSlot(int key)
    {
        for (int i = 0; i < SlotCount; i++)
        {
            if (SlotKeys[i] == key)
            {
                return i;
            }
        }
        return -1;
    }

    public void SetSlot(int key, bool inverted)
    {
        int i = FindSlot(key);
        if (i < 0)
        {
            if (SlotCount == SlotArray.Length)
            {
                return;
            }
            i = SlotCount++;
            SlotKeys[i] = key;
        }
        SlotInverted = (byte)(inverted ? SlotInverted | (1 << i) : SlotInverted & ~(1 << i));
    }

    public void ClearSlot(int key)
    {
        int i = FindSlot(key);
        if (i < 0)
        {
            return;
        }
        int last = --SlotCount;
        SlotKeys[i] = SlotKeys[last];
        bool lastInverted = (SlotInverted & (1 << last)) != 0;
        SlotInverted = (byte)(SlotInverted & ~(1 << last));
        SlotInverted = (byte)(lastInverted ? SlotInverted | (1 << i) : SlotInverted & ~(1 << i));
    }

    [InlineArray(16)]
    public struct AddressArray
    {
        private ulong _element;
    }

    [InlineArray(Length)]
    public struct SlotArray
    {
        public const int Length = 4;
        private int _element;
    }
}

/// <summary>
/// A forward data-flow over a function's runs that finds the conditional branches deciding on CPU features:
/// values produced by CPUID/XGETBV, loaded from feature data (libgcc's __cpu_model, glibc's cpu_features,
/// variables the analysis saw CPUID results stored into) or returned by feature accessors are tainted; taint
/// follows moves, ALU operations, SETcc and four stack slots; a Jcc whose flags are tainted is a feature test.
/// </summary>
internal sealed class FeatureTaint
{
    private const int MaxPassesPerRun = 12;
    private const ushort CallerSaved = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11);

    private readonly FunctionDecoder _decoder;
    private readonly BinaryContext _context;
    private readonly FeatureVariables _variables;
    private readonly InstructionInfoFactory _info = new();
    private Instruction[] _instructions = new Instruction[256];
    private const int MaxCachedInstructions = 200_000;
    private Instruction[] _cache = new Instruction[1024];
    private int[] _cacheOffset = new int[64];
    private int[] _cacheCount = new int[64];
    private TaintState[] _in = new TaintState[64];
    private bool[] _reached = new bool[64];
    private int[] _passes = new int[64];
    private readonly Queue<int> _queue = new();

    public FeatureTaint(FunctionDecoder decoder, BinaryContext context, FeatureVariables variables)
    {
        _decoder = decoder;
        _context = context;
        _variables = variables;
    }

    /// <summary>Per run of the last analysed graph: what its ending branch tests.</summary>
    public BranchTest[] Tests { get; private set; } = new BranchTest[64];

    /// <summary>RAX held feature bits at some return.</summary>
    public bool ReturnsFeatures { get; private set; }

    /// <summary>Data addresses (and sizes) a feature value was stored to.</summary>
    public List<(ulong Address, int Size)> Stores { get; } = [];

    public bool Analyze(FunctionGraph graph)
    {
        int n = graph.RunCount;
        if (_in.Length < n)
        {
            int size = Math.Max(n, _in.Length * 2);
            _in = new TaintState[size];
            _reached = new bool[size];
            _passes = new int[size];
            Tests = new BranchTest[size];
        }
        Array.Clear(_in, 0, n);
        Array.Clear(_reached, 0, n);
        Array.Clear(_passes, 0, n);
        Array.Clear(Tests, 0, n);
        ReturnsFeatures = false;
        Stores.Clear();
        bool anyTest = false;
        bool cached = CacheRuns(graph);

        _queue.Clear();
        _reached[0] = true;
        _queue.Enqueue(0);
        while (_queue.Count > 0)
        {
            int r = _queue.Dequeue();
            if (++_passes[r] > MaxPassesPerRun)
            {
                continue;
            }
            ref var run = ref graph.Runs[r];
            Instruction[] buffer;
            int first, count;
            if (cached)
            {
                (buffer, first, count) = (_cache, _cacheOffset[r], _cacheOffset[r] + _cacheCount[r]);
            }
            else
            {
                count = RunInstructions(in run);
                (buffer, first) = (_instructions, Math.Max(0, count - _instructions.Length));
            }
            var state = _in[r];
            for (int i = first; i < count; i++)
            {
                ref var instruction = ref buffer[i];
                if (i == count - 1 && run.EndKind == RunEnd.Branch)
                {
                    Tests[r] = Classify(in state, instruction.ConditionCode);
                    anyTest |= Tests[r] != BranchTest.NotATest;
                }
                if (instruction.Mnemonic == Mnemonic.Cpuid && IsInformationLeaf(buffer, i, first))
                {
                    // Vendor, cache, topology and brand leaves describe the CPU, not its features.
                    state.Tainted &= 0xfff0;
                    continue;
                }
                Transfer(ref state, in instruction);
            }
            if (run.EndKind == RunEnd.Return && (state.Tainted & 1) != 0)
            {
                ReturnsFeatures = true;
            }
            foreach (int successor in graph.SuccessorsOf(r))
            {
                if (successor < 0)
                {
                    continue;
                }
                var merged = _reached[successor] ? TaintState.Merge(in _in[successor], in state) : state;
                if (!_reached[successor] || !merged.Equals(_in[successor]))
                {
                    _reached[successor] = true;
                    _in[successor] = merged;
                    _queue.Enqueue(successor);
                }
            }
        }
        return anyTest;
    }

    /// <summary>
    /// Whether the CPUID at <paramref name="index"/> reads a leaf without feature bits: EAX set by a
    /// preceding `mov eax, imm` (or `xor eax, eax`) to 0, 2, 4, 0xb, 0x16, 0x1f or 0x80000002–0x80000006.
    /// </summary>
    private static bool IsInformationLeaf(Instruction[] buffer, int index, int first)
    {
        for (int j = index - 1; j >= Math.Max(first, index - 4); j--)
        {
            ref var ins = ref buffer[j];
            if (ins.Op0Kind != OpKind.Register || Gpr(ins.Op0Register) != 0)
            {
                continue;
            }
            long? leaf = ins.Mnemonic switch
            {
                Mnemonic.Mov when IsImmediate(ins.Op1Kind) => (long)(uint)ins.GetImmediate(1),
                Mnemonic.Xor when ins.Op1Kind == OpKind.Register && Gpr(ins.Op1Register) == 0 => 0,
                _ => null,
            };
            return leaf is 0 or 2 or 4 or 0xb or 0x16 or 0x1f or (>= 0x80000002 and <= 0x80000006);
        }
        return false;
    }

    /// <summary>
    /// Decodes every run once up front, so the fixpoint iterations (a run may be visited many times) do not
    /// re-decode; functions beyond <see cref="MaxCachedInstructions"/> decode per visit instead.
    /// </summary>
    private bool CacheRuns(FunctionGraph graph)
    {
        int n = graph.RunCount;
        if (_cacheOffset.Length < n)
        {
            _cacheOffset = new int[Math.Max(n, _cacheOffset.Length * 2)];
            _cacheCount = new int[_cacheOffset.Length];
        }
        if (graph.Instructions > MaxCachedInstructions)
        {
            return false;
        }
        int total = 0;
        for (int r = 0; r < n; r++)
        {
            ref var run = ref graph.Runs[r];
            int room = (int)Math.Min(run.End - run.Start, 1 << 20);
            if (_cache.Length < total + room)
            {
                Array.Resize(ref _cache, Math.Max(total + room, _cache.Length * 2));
            }
            _cacheOffset[r] = total;
            _cacheCount[r] = _decoder.Redecode(in run, _cache.AsSpan(total, room));
            total += _cacheCount[r];
        }
        return true;
    }

    private int RunInstructions(in Run run)
    {
        // Runs are usually short; grow the buffer for long ones so no instruction is dropped.
        int estimate = (int)Math.Min(run.End - run.Start, 1 << 20);
        if (estimate > _instructions.Length)
        {
            _instructions = new Instruction[estimate];
        }
        return _decoder.Redecode(in run, _instructions);
    }

    private static BranchTest Classify(in TaintState state, ConditionCode condition) => (state.Flags, condition) switch
    {
        (FlagMeaning.None, _) => BranchTest.NotATest,
        (FlagMeaning.ZeroMeansAbsent, ConditionCode.e) => BranchTest.TakenWhenAbsent,
        (FlagMeaning.ZeroMeansAbsent, ConditionCode.ne) => BranchTest.TakenWhenPresent,
        // After TEST r,r of feature bits the sign flag is the top feature bit (GCC tests bit 31 this way).
        (FlagMeaning.ZeroMeansAbsent, ConditionCode.s) => BranchTest.TakenWhenPresent,
        (FlagMeaning.ZeroMeansAbsent, ConditionCode.ns) => BranchTest.TakenWhenAbsent,
        (FlagMeaning.ZeroMeansPresent, ConditionCode.e) => BranchTest.TakenWhenPresent,
        (FlagMeaning.ZeroMeansPresent, ConditionCode.ne) => BranchTest.TakenWhenAbsent,
        (FlagMeaning.CarryMeansPresent, ConditionCode.b) => BranchTest.TakenWhenPresent,
        (FlagMeaning.CarryMeansPresent, ConditionCode.ae) => BranchTest.TakenWhenAbsent,
        (_, ConditionCode.None) => BranchTest.NotATest, // LOOP/JRCXZ do not read flags
        _ => BranchTest.Unknown,
    };

    private static int Gpr(Register register)
    {
        if (register == Register.None)
        {
            return -1;
        }
        var full = register.GetFullRegister();
        return full >= Register.RAX && full <= Register.R15 ? full - Register.RAX : -1;
    }

    private static bool IsTainted(in TaintState s, int gpr) => gpr >= 0 && (s.Tainted & (1 << gpr)) != 0;

    private static void Set(ref TaintState s, int gpr, bool tainted, bool inverted = false, bool vague = false, bool bits = true)
    {
        if (gpr < 0)
        {
            return;
        }
        ushort bit = (ushort)(1 << gpr);
        s.AddressKnown = (ushort)(s.AddressKnown & ~bit);
        s.Bits = (ushort)(tainted && bits ? s.Bits | bit : s.Bits & ~bit);
        s.Tainted = (ushort)(tainted ? s.Tainted | bit : s.Tainted & ~bit);
        s.Inverted = (ushort)(tainted && inverted ? s.Inverted | bit : s.Inverted & ~bit);
        s.Vague = (ushort)(tainted && vague ? s.Vague | bit : s.Vague & ~bit);
        if (s.MaskRegister == gpr + 1)
        {
            s.MaskRegister = 0;
        }
    }

    private static void CopyRegister(ref TaintState s, int to, int from)
    {
        if (to < 0)
        {
            return;
        }
        bool tainted = IsTainted(in s, from);
        Set(ref s, to, tainted, tainted && (s.Inverted & (1 << from)) != 0, tainted && (s.Vague & (1 << from)) != 0,
            tainted && (s.Bits & (1 << from)) != 0);
        if (from >= 0 && (s.AddressKnown & (1 << from)) != 0)
        {
            s.AddressKnown |= (ushort)(1 << to);
            s.Addresses[to] = s.Addresses[from];
        }
    }

    /// <summary>A stack slot key for [rsp+d]/[rbp+d] without index, or null.</summary>
    private static int? SlotKey(in Instruction instruction)
    {
        if (instruction.MemoryIndex != Register.None)
        {
            return null;
        }
        int displacement = (int)instruction.MemoryDisplacement64;
        return instruction.MemoryBase switch
        {
            Register.RSP => displacement * 2,
            Register.RBP => displacement * 2 + 1,
            _ => null,
        };
    }

    /// <summary>The data address a memory operand names, when RIP-relative or based on a known address.</summary>
    private static ulong? EffectiveAddress(in TaintState s, in Instruction instruction)
    {
        if (instruction.IsIPRelativeMemoryOperand)
        {
            return instruction.IPRelativeMemoryAddress;
        }
        int b = Gpr(instruction.MemoryBase);
        if (b >= 0 && instruction.MemoryIndex == Register.None && (s.AddressKnown & (1 << b)) != 0)
        {
            return s.Addresses[b] + instruction.MemoryDisplacement64;
        }
        return null;
    }

    /// <summary>Taint of the value a memory operand reads: (tainted, inverted, feature bits proper).</summary>
    private (bool Tainted, bool Inverted, bool Bits) LoadTaint(in TaintState s, in Instruction instruction)
    {
        if (EffectiveAddress(in s, in instruction) is ulong address)
        {
            bool feature = _context.IsFeatureData(address, _variables);
            return (feature, false, feature);
        }
        if (IsTainted(in s, Gpr(instruction.MemoryBase)) || IsTainted(in s, Gpr(instruction.MemoryIndex)))
        {
            return (true, false, false);
        }
        if (SlotKey(in instruction) is int key)
        {
            int slot = s.FindSlot(key);
            if (slot >= 0)
            {
                return (true, (s.SlotInverted & (1 << slot)) != 0, true);
            }
        }
        return (false, false, false);
    }

    private static FlagMeaning ZeroMeaning(in TaintState s, int gpr) =>
        (s.Vague & (1 << gpr)) != 0 ? FlagMeaning.Unknown
        : (s.Inverted & (1 << gpr)) != 0 ? FlagMeaning.ZeroMeansPresent
        : FlagMeaning.ZeroMeansAbsent;

    private static bool IsImmediate(OpKind kind) => kind is OpKind.Immediate8 or OpKind.Immediate8to16 or OpKind.Immediate8to32
        or OpKind.Immediate8to64 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64;

    private void Transfer(ref TaintState s, in Instruction ins)
    {
        var op0 = ins.Op0Kind;
        var op1 = ins.OpCount > 1 ? ins.Op1Kind : OpKind.Register;
        int r0 = op0 == OpKind.Register ? Gpr(ins.Op0Register) : -1;
        int r1 = ins.OpCount > 1 && op1 == OpKind.Register ? Gpr(ins.Op1Register) : -1;

        switch (ins.Mnemonic)
        {
            case Mnemonic.Cpuid:
                Set(ref s, 0, true);
                Set(ref s, 1, true);
                Set(ref s, 2, true);
                Set(ref s, 3, true);
                return;
            case Mnemonic.Xgetbv:
                Set(ref s, 0, true);
                Set(ref s, 2, true);
                return;
            case Mnemonic.Mov or Mnemonic.Movzx or Mnemonic.Movsx or Mnemonic.Movsxd:
                if (op0 == OpKind.Register)
                {
                    if (op1 == OpKind.Register)
                    {
                        CopyRegister(ref s, r0, r1);
                    }
                    else if (op1 == OpKind.Memory)
                    {
                        var (tainted, inverted, bits) = LoadTaint(in s, in ins);
                        Set(ref s, r0, tainted, inverted, bits: bits);
                    }
                    else
                    {
                        Set(ref s, r0, false);
                    }
                }
                else if (op0 == OpKind.Memory)
                {
                    Store(ref s, in ins, r1);
                }
                return;
            case Mnemonic.Lea:
                // A pointer to feature data: what is loaded through it is tainted, but it is not itself feature bits.
                Set(ref s, r0, (ins.IsIPRelativeMemoryOperand && _context.IsFeatureData(ins.IPRelativeMemoryAddress, _variables))
                    || IsTainted(in s, Gpr(ins.MemoryBase)) || IsTainted(in s, Gpr(ins.MemoryIndex)), bits: false);
                if (r0 >= 0 && ins.IsIPRelativeMemoryOperand)
                {
                    s.AddressKnown |= (ushort)(1 << r0);
                    s.Addresses[r0] = ins.IPRelativeMemoryAddress;
                }
                return;
            case Mnemonic.Xor or Mnemonic.Sub or Mnemonic.Sbb when r0 >= 0 && r0 == r1:
                Set(ref s, r0, false);
                s.Flags = FlagMeaning.None;
                return;
            case Mnemonic.Test or Mnemonic.And or Mnemonic.Or:
                TestLike(ref s, in ins, r0, r1, op0, op1);
                return;
            case Mnemonic.Bt:
                s.Flags = (r0 >= 0 ? IsTainted(in s, r0) : op0 == OpKind.Memory && LoadTaint(in s, in ins).Tainted)
                    ? FlagMeaning.CarryMeansPresent : FlagMeaning.None;
                return;
            case Mnemonic.Cmp:
                Compare(ref s, in ins, r0, r1, op0, op1);
                return;
            case Mnemonic.Not when r0 >= 0:
                if (IsTainted(in s, r0))
                {
                    s.Inverted ^= (ushort)(1 << r0);
                }
                return;
            case Mnemonic.Shr or Mnemonic.Sar or Mnemonic.Shl when r0 >= 0 && IsTainted(in s, r0) && (ins.OpCount == 1 || IsImmediate(op1)):
                // Moving feature bits keeps what they mean; ZF then tests the shifted bits.
                s.AddressKnown &= (ushort)~(1 << r0);
                s.Flags = ZeroMeaning(in s, r0);
                return;
            case Mnemonic.Call:
                if (IsFeatureCall(in ins) && (s.AddressKnown & (1 << 7)) != 0 && _context.IsWritableData(s.Addresses[7]))
                {
                    // A CPUID helper handed a buffer (OpenSSL's OPENSSL_ia32_cpuid(OPENSSL_ia32cap_P)) fills
                    // it: treat the first 64 bytes as feature data.
                    Stores.Add((s.Addresses[7], 64));
                }
                s.Tainted &= unchecked((ushort)~CallerSaved);
                s.Inverted &= s.Tainted;
                s.Vague &= s.Tainted;
                s.Flags = FlagMeaning.None;
                if (IsFeatureCall(in ins))
                {
                    Set(ref s, 0, true);
                }
                return;
            case Mnemonic.Pop:
                Set(ref s, r0, false);
                return;
            case Mnemonic.Push:
                return;
        }
        if (IsSetcc(ins.Mnemonic))
        {
            SetCondition(ref s, in ins, r0);
            return;
        }
        Generic(ref s, in ins);
    }

    private static bool IsSetcc(Mnemonic m) => m is Mnemonic.Seta or Mnemonic.Setae or Mnemonic.Setb or Mnemonic.Setbe
        or Mnemonic.Sete or Mnemonic.Setg or Mnemonic.Setge or Mnemonic.Setl or Mnemonic.Setle or Mnemonic.Setne
        or Mnemonic.Setno or Mnemonic.Setnp or Mnemonic.Setns or Mnemonic.Seto or Mnemonic.Setp or Mnemonic.Sets;

    private void Store(ref TaintState s, in Instruction ins, int source)
    {
        bool tainted = IsTainted(in s, source);
        bool bits = tainted && (s.Bits & (1 << source)) != 0;
        bool inverted = tainted && (s.Inverted & (1 << source)) != 0;
        if (SlotKey(in ins) is int key)
        {
            if (tainted)
            {
                s.SetSlot(key, inverted);
            }
            else
            {
                s.ClearSlot(key);
            }
        }
        else if (bits && EffectiveAddress(in s, in ins) is ulong address && _context.IsWritableData(address))
        {
            Stores.Add((address, (int)Math.Max(1u, (uint)ins.MemorySize.GetSize())));
        }
    }

    private void TestLike(ref TaintState s, in Instruction ins, int r0, int r1, OpKind op0, OpKind op1)
    {
        bool t0 = r0 >= 0 ? IsTainted(in s, r0) : op0 == OpKind.Memory && LoadTaint(in s, in ins).Tainted;
        bool t1 = r1 >= 0 ? IsTainted(in s, r1) : op1 == OpKind.Memory && LoadTaint(in s, in ins).Tainted;
        if (!t0 && !t1)
        {
            if (ins.Mnemonic != Mnemonic.Test)
            {
                Set(ref s, r0, false);
            }
            s.Flags = FlagMeaning.None;
            return;
        }
        int source = t0 && r0 >= 0 ? r0 : r1;
        var meaning = source >= 0 ? ZeroMeaning(in s, source) : FlagMeaning.ZeroMeansAbsent;
        if (t0 && t1 && r0 >= 0 && r1 >= 0 && r0 != r1 && ZeroMeaning(in s, r1) != meaning)
        {
            meaning = FlagMeaning.Unknown;
        }
        if (ins.Mnemonic != Mnemonic.Test && r0 >= 0)
        {
            bool vague = meaning == FlagMeaning.Unknown;
            bool inverted = meaning == FlagMeaning.ZeroMeansPresent;
            // Masking with a constant extracts feature bits; OR/AND of two values keeps what they were.
            bool bits = (ins.Mnemonic == Mnemonic.And && IsImmediate(op1)) || ((s.Bits & (1 << source)) != 0);
            Set(ref s, r0, true, inverted, vague, bits);
            if (ins.Mnemonic == Mnemonic.And && IsImmediate(op1))
            {
                s.MaskRegister = (byte)(r0 + 1);
                s.MaskValue = (long)ins.GetImmediate(1);
            }
        }
        s.Flags = meaning;
    }

    private void Compare(ref TaintState s, in Instruction ins, int r0, int r1, OpKind op0, OpKind op1)
    {
        bool t0 = r0 >= 0 ? IsTainted(in s, r0) : op0 == OpKind.Memory && LoadTaint(in s, in ins).Tainted;
        bool t1 = r1 >= 0 ? IsTainted(in s, r1) : op1 == OpKind.Memory && LoadTaint(in s, in ins).Tainted;
        if (!t0 && !t1)
        {
            s.Flags = FlagMeaning.None;
            return;
        }
        if (t0 && IsImmediate(op1))
        {
            long immediate = (long)ins.GetImmediate(1);
            if (immediate == 0)
            {
                s.Flags = r0 >= 0 ? ZeroMeaning(in s, r0) : FlagMeaning.ZeroMeansAbsent;
                return;
            }
            if (r0 >= 0 && s.MaskRegister == r0 + 1 && s.MaskValue == immediate && (s.Vague & (1 << r0)) == 0)
            {
                // (x & mask) == mask: equal means every masked feature bit is set.
                s.Flags = FlagMeaning.ZeroMeansPresent;
                return;
            }
        }
        s.Flags = FlagMeaning.Unknown;
    }

    private static void SetCondition(ref TaintState s, in Instruction ins, int r0)
    {
        var test = Classify(in s, ins.ConditionCode);
        if (test == BranchTest.NotATest)
        {
            if (r0 >= 0)
            {
                Set(ref s, r0, false);
            }
            else if (SlotKey(in ins) is int clearKey)
            {
                s.ClearSlot(clearKey);
            }
            return;
        }
        bool inverted = test == BranchTest.TakenWhenAbsent;
        bool vague = test == BranchTest.Unknown;
        if (r0 >= 0)
        {
            Set(ref s, r0, true, inverted, vague);
        }
        else if (SlotKey(in ins) is int key)
        {
            s.SetSlot(key, inverted);
        }
    }

    /// <summary>Any other instruction: registers it writes become tainted iff something it reads was.</summary>
    private void Generic(ref TaintState s, in Instruction ins)
    {
        var info = _info.GetInfo(in ins);
        bool readsTaint = false, readsBits = false;
        foreach (var used in info.GetUsedRegisters())
        {
            int gpr = Gpr(used.Register);
            if (used.Access is OpAccess.Read or OpAccess.ReadWrite or OpAccess.CondRead or OpAccess.ReadCondWrite
                && IsTainted(in s, gpr))
            {
                readsTaint = true;
                readsBits |= (s.Bits & (1 << gpr)) != 0;
            }
        }
        if (!readsTaint && ins.Op0Kind != OpKind.Memory)
        {
            for (int i = 0; i < ins.OpCount; i++)
            {
                if (ins.GetOpKind(i) == OpKind.Memory && LoadTaint(in s, in ins).Tainted)
                {
                    readsTaint = true;
                    break;
                }
            }
        }
        if (!readsTaint && ins.ConditionCode != ConditionCode.None && s.Flags != FlagMeaning.None)
        {
            readsTaint = true; // CMOVcc and friends pick a value by a feature test
        }
        foreach (var used in info.GetUsedRegisters())
        {
            if (used.Access is OpAccess.Write or OpAccess.ReadWrite or OpAccess.CondWrite or OpAccess.ReadCondWrite)
            {
                int gpr = Gpr(used.Register);
                if (gpr >= 0 && gpr != 4)
                {
                    Set(ref s, gpr, readsTaint, vague: readsTaint, bits: readsBits);
                }
            }
        }
        if (ins.Op0Kind == OpKind.Memory && SlotKey(in ins) is int key)
        {
            s.ClearSlot(key);
        }
        if (ins.RflagsModified != RflagsBits.None)
        {
            s.Flags = readsTaint ? FlagMeaning.Unknown : FlagMeaning.None;
        }
    }

    private bool IsFeatureCall(in Instruction ins)
    {
        if (ins.Op0Kind == OpKind.NearBranch64)
        {
            return _context.IsFeatureFunction(ins.NearBranch64) || _decoder.IsFeatureImportStub(ins.NearBranch64);
        }
        return ins.IsIPRelativeMemoryOperand && _context.TryGetGotSlot(ins.IPRelativeMemoryAddress, out var slot)
            && (slot.Kind == GotSlotKind.Import ? BinaryContext.IsFeatureFunctionName(slot.Name) : _context.IsFeatureFunction(slot.Target));
    }
}
