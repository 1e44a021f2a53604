using System.Numerics;
using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Which WebAssembly locals are live at each safe point of a function. A frozen frame only needs its live
/// locals; saving dead ones would make the JIT keep them alive through the hot code just so the (never taken)
/// unwind path could read them — measurable register pressure in large functions.
///
/// Classic backward dataflow over a control-flow graph built from the structured code. Safe points are block
/// boundaries: a loop header starts a block and every call ends one, so "live at the safe point" is the live-in
/// set of the block that starts there.
/// </summary>
internal sealed class LocalLiveness
{
    /// <summary>Functions beyond this many (blocks × locals) bits are treated as "everything live" to bound memory.</summary>
    private const long MaxBits = 64L << 20;

    private readonly Dictionary<int, ulong[]> liveAt;
    private readonly int localCount;

    private LocalLiveness(Dictionary<int, ulong[]> liveAt, int localCount)
    {
        this.liveAt = liveAt;
        this.localCount = localCount;
    }

    /// <summary>Key for the function-entry safe point.</summary>
    public const int EntryKey = -1;

    /// <summary>Whether local <paramref name="local"/> is live at the safe point of the instruction at file offset <paramref name="key"/>.</summary>
    public bool IsLive(int key, int local) =>
        !liveAt.TryGetValue(key, out var set) || (set[local >> 6] & (1UL << (local & 63))) != 0;

    public int LiveCount(int key)
    {
        if (!liveAt.TryGetValue(key, out var set)) return localCount;
        var n = 0;
        foreach (var w in set) n += BitOperations.PopCount(w);
        return n;
    }

    private sealed class Block
    {
        public readonly List<Block> Succ = new(2);
        public ulong[] Use = [];
        public ulong[] Def = [];
        public ulong[] LiveIn = [];
    }

    private struct Frame
    {
        public int Opcode;
        public Block? Header;   // loop
        public Block End;       // continuation after the construct
        public Block? IfBlock;  // if: the block that branches into then/else
        public bool HasElse;
    }

    public static LocalLiveness Analyze(Module module, int functionIndex, int localCount, bool memory64)
    {
        var body = module.Bodies[functionIndex - module.ImportedFunctionCount];
        var words = (localCount + 63) >> 6;
        var blocks = new List<Block>();
        var safePointBlocks = new List<(int Key, Block Block)>();

        Block NewBlock()
        {
            var b = new Block { Use = new ulong[words], Def = new ulong[words], LiveIn = new ulong[words] };
            blocks.Add(b);
            if ((long)blocks.Count * words * 64 > MaxBits) throw new TooBigException();
            return b;
        }

        try
        {
            var exit = NewBlock();
            var cur = NewBlock();
            safePointBlocks.Add((EntryKey, cur));
            var frames = new List<Frame> { new() { Opcode = 0, End = exit } };
            var reader = new InstructionReader(body.Code.Span, body.CodeOffset, memory64, "code");
            var ins = default(Instruction);
            while (frames.Count > 0)
            {
                reader.Read(ref ins);
                switch (ins.Opcode)
                {
                    case 0x20:
                        if (!Has(cur.Def, (int)ins.Index)) Set(cur.Use, (int)ins.Index);
                        break;
                    case 0x21:
                    case 0x22:
                        Set(cur.Def, (int)ins.Index);
                        break;
                    case 0x02:
                        frames.Add(new Frame { Opcode = 0x02, End = NewBlock() });
                        break;
                    case 0x03:
                        {
                            var header = NewBlock();
                            cur.Succ.Add(header);
                            cur = header;
                            safePointBlocks.Add((ins.Offset, header));
                            frames.Add(new Frame { Opcode = 0x03, Header = header, End = NewBlock() });
                            break;
                        }
                    case 0x04:
                        {
                            var then = NewBlock();
                            cur.Succ.Add(then);
                            frames.Add(new Frame { Opcode = 0x04, End = NewBlock(), IfBlock = cur });
                            cur = then;
                            break;
                        }
                    case 0x05:
                        {
                            var f = frames[^1];
                            cur.Succ.Add(f.End);
                            var elseBlock = NewBlock();
                            f.IfBlock!.Succ.Add(elseBlock);
                            f.HasElse = true;
                            frames[^1] = f;
                            cur = elseBlock;
                            break;
                        }
                    case 0x0B:
                        {
                            var f = frames[^1];
                            frames.RemoveAt(frames.Count - 1);
                            cur.Succ.Add(f.End);
                            if (f.Opcode == 0x04 && !f.HasElse) f.IfBlock!.Succ.Add(f.End);
                            cur = f.End;
                            break;
                        }
                    case 0x0C:
                        cur.Succ.Add(Target(frames, ins.Index));
                        cur = NewBlock();
                        break;
                    case 0x0D:
                        {
                            cur.Succ.Add(Target(frames, ins.Index));
                            var next = NewBlock();
                            cur.Succ.Add(next);
                            cur = next;
                            break;
                        }
                    case 0x0E:
                        foreach (var t in reader.BrTableTargets) cur.Succ.Add(Target(frames, t));
                        cur = NewBlock();
                        break;
                    case 0x0F:
                        cur.Succ.Add(exit);
                        cur = NewBlock();
                        break;
                    case 0x00:
                        cur = NewBlock();
                        break;
                    case 0x10:
                    case 0x11:
                        {
                            var next = NewBlock();
                            cur.Succ.Add(next);
                            cur = next;
                            safePointBlocks.Add((ins.Offset, next));
                            break;
                        }
                }
            }
        }
        catch (TooBigException)
        {
            return new LocalLiveness([], localCount);
        }

        // Backward dataflow to a fixpoint; blocks were created roughly in code order, so walk them in reverse.
        var changed = true;
        var tmp = new ulong[words];
        while (changed)
        {
            changed = false;
            for (var i = blocks.Count - 1; i >= 0; i--)
            {
                var b = blocks[i];
                Array.Clear(tmp);
                foreach (var s in b.Succ)
                {
                    for (var w = 0; w < words; w++) tmp[w] |= s.LiveIn[w];
                }
                for (var w = 0; w < words; w++)
                {
                    var v = b.Use[w] | (tmp[w] & ~b.Def[w]);
                    if (v != b.LiveIn[w])
                    {
                        b.LiveIn[w] = v;
                        changed = true;
                    }
                }
            }
        }

        var result = new Dictionary<int, ulong[]>(safePointBlocks.Count);
        foreach (var (key, block) in safePointBlocks) result[key] = block.LiveIn;
        return new LocalLiveness(result, localCount);
    }

    private static Block Target(List<Frame> frames, uint depth)
    {
        var f = frames[frames.Count - 1 - (int)depth];
        return f.Opcode == 0x03 ? f.Header! : f.End;
    }

    private static bool Has(ulong[] set, int i) => (set[i >> 6] & (1UL << (i & 63))) != 0;

    private static void Set(ulong[] set, int i) => set[i >> 6] |= 1UL << (i & 63);

    private sealed class TooBigException : Exception;
}
