using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;
using Iced.Intel;

namespace Ferry.CpuFeatures.Bench;

/// <summary>
/// The decode loops the benchmarks compare, on the executable sections of one ELF file: Iced alone (the
/// baseline), Iced plus Ferry's per-instruction classification (the hot loop of the linear sweep), and the
/// recursive descent that `cpu scan` runs per function. All single-threaded; each returns the instructions
/// decoded so callers can compute throughput.
/// </summary>
public sealed class DecodeKernels
{
    private readonly (byte[] Bytes, ulong Address)[] _sections;
    private readonly ElfFile _file;
    private readonly ulong[] _functions;
    private readonly BinaryContext _context;
    private readonly FunctionDecoder _decoder;

    public DecodeKernels(ElfFile file)
    {
        _file = file;
        _sections = [.. file.CodeSections.Select(s => (file.Image.Span(s.Offset, s.Size, "code").ToArray(), s.Address))];
        CodeBytes = _sections.Sum(s => (long)s.Bytes.Length);
        // The descent kernel decodes every function the analysis would: take them from one analysis run.
        var analysis = BinaryAnalyzer.Analyze("bench", file, keepGraph: true);
        _functions = [.. analysis.Graph!.Functions.Select(f => f.Entry)];
        analysis.DropGraph();
        var code = new CodeSpace(file.CodeSections);
        _context = new BinaryContext(file, code);
        _decoder = new FunctionDecoder(_context, new FeatureVariables());
        foreach (var entry in _functions)
        {
            code.MarkEntry(entry);
        }
    }

    public long CodeBytes { get; }

    /// <summary>Baseline: Iced's decoder over every code byte, one reused Instruction, nothing else.</summary>
    public long IcedLinear()
    {
        long count = 0;
        foreach (var (bytes, address) in _sections)
        {
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            decoder.IP = address;
            ulong end = address + (ulong)bytes.Length;
            while (decoder.IP < end)
            {
                decoder.Decode(out var instruction);
                count++;
                _ = instruction.Length;
            }
        }
        return count;
    }

    /// <summary>Iced plus the table lookup that turns each instruction into its CPU-feature set.</summary>
    public long ClassifyLinear(out FeatureSet features)
    {
        long count = 0;
        features = FeatureSet.Empty;
        foreach (var (bytes, address) in _sections)
        {
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            decoder.IP = address;
            ulong end = address + (ulong)bytes.Length;
            while (decoder.IP < end)
            {
                decoder.Decode(out var instruction);
                features |= IcedFeatureMap.For(instruction.Code);
                count++;
            }
        }
        return count;
    }

    /// <summary>Recursive descent of every function (runs, successors, edges, features), without summaries;
    /// the per-file tables (symbols, GOT slots) are built once in the constructor, as a scan builds them once per file.</summary>
    public long Descent()
    {
        long count = 0;
        foreach (var entry in _functions)
        {
            count += _decoder.Decode(entry, _context.SizeOf(entry)).Instructions;
        }
        return count;
    }

    /// <summary>The whole per-file analysis `cpu scan` runs (descent, data-flow, refinement, reachability).</summary>
    public long Analyze() => BinaryAnalyzer.Analyze("bench", _file).Stats.Instructions;
}
