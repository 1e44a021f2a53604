using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;

namespace Ferry.CpuFeatures.Probe;

public sealed record MinimizeResult(
    QemuCpuModel Base,
    IReadOnlyList<string> Candidates,
    IReadOnlyList<string> NotToggled,
    IReadOnlyList<string> Kept,
    int Runs,
    string CpuSpec,
    int ReferenceExitCode,
    string? Failure);

/// <summary>
/// `cpu minimize`: delta debugging (Zeller's ddmin) over the instruction-set features of a base CPU model,
/// looking for a small set to keep such that the command still ends as it does with all of them. Each test is
/// one run under qemu-user with the other candidates switched off (-feat). ddmin needs O(k·log n) runs for k
/// needed features out of n, not 2^n; results are cached so no feature set runs twice.
/// </summary>
public sealed class FeatureMinimizer(QemuUser qemu, CpuModelCatalog catalog)
{
    private readonly Dictionary<string, bool> _cache = new(StringComparer.Ordinal);
    private List<string> _candidates = [];
    private QemuCpuModel? _base;
    private IReadOnlyList<string> _command = [];
    private TimeSpan _timeout;
    private int _reference;
    private bool _sameOutput;
    private string _referenceOutput = "";
    private Action<string>? _log;

    public int Runs { get; private set; }

    public MinimizeResult Minimize(QemuCpuModel baseModel, IReadOnlyList<string> command, TimeSpan perRun, bool sameOutput, Action<string>? log)
    {
        _base = baseModel;
        _command = command;
        _timeout = perRun;
        _sameOutput = sameOutput;
        _log = log;
        _cache.Clear();
        Runs = 0;

        var reference = Execute([]);
        Runs++;
        string fullSpec = qemu.CpuSpec(catalog, baseModel, [], out _);
        var dropped = reference.TcgDropped.Select(FromQemu).ToHashSet(StringComparer.Ordinal);
        var notToggled = new List<string>();
        _candidates = [];
        foreach (var feature in baseModel.Features.Order(StringComparer.Ordinal))
        {
            if (!CpuFeatureInfo.TryParse(feature, out var f) || CpuFeatureInfo.Baseline.Contains(f))
            {
                continue; // system features (apic, mtrr…) and the x86-64 baseline stay on
            }
            if (CpuFeatureInfo.Avx512Family.Contains(f) || dropped.Contains(feature) || !qemu.KnownFlags.Contains(catalog.QemuName(feature)))
            {
                notToggled.Add(feature); // TCG cannot emulate it (AVX-512 and others it drops) or qemu cannot name it
                continue;
            }
            _candidates.Add(feature);
        }
        if (reference.TimedOut || reference.IllegalInstruction)
        {
            string why = reference.TimedOut ? "timed out" : "died of SIGILL";
            return new MinimizeResult(baseModel, _candidates, notToggled, _candidates, Runs, fullSpec, reference.ExitCode,
                $"the command {why} even with every feature of {baseModel.Name}");
        }
        _reference = reference.ExitCode;
        _referenceOutput = reference.StandardOutput;
        _cache[Key(_candidates)] = true;
        _log?.Invoke($"reference run with all of {baseModel.Name}: exit {_reference}; {_candidates.Count} features to minimise over");

        List<string> kept = Passes([]) ? [] : Ddmin(_candidates);
        var removed = _candidates.Except(kept).ToList();
        string spec = qemu.CpuSpec(catalog, baseModel, removed, out _);
        return new MinimizeResult(baseModel, _candidates, notToggled, kept, Runs, spec, _reference, null);
    }

    /// <summary>ddmin for the property "the command passes keeping only these features".</summary>
    private List<string> Ddmin(List<string> current)
    {
        int n = 2;
        while (current.Count >= 2)
        {
            var chunks = Split(current, n);
            bool reduced = false;
            foreach (var chunk in chunks)
            {
                if (Passes(chunk))
                {
                    current = chunk;
                    n = 2;
                    reduced = true;
                    break;
                }
            }
            if (!reduced)
            {
                foreach (var chunk in chunks)
                {
                    var complement = current.Except(chunk).ToList();
                    if (Passes(complement))
                    {
                        current = complement;
                        n = Math.Max(n - 1, 2);
                        reduced = true;
                        break;
                    }
                }
            }
            if (!reduced)
            {
                if (n >= current.Count)
                {
                    break;
                }
                n = Math.Min(n * 2, current.Count);
            }
        }
        return current;
    }

    private static List<List<string>> Split(List<string> items, int n)
    {
        var chunks = new List<List<string>>();
        int start = 0;
        for (int i = 0; i < n; i++)
        {
            int size = (items.Count - start) / (n - i);
            chunks.Add(items.GetRange(start, size));
            start += size;
        }
        return chunks.Where(c => c.Count > 0).ToList();
    }

    private bool Passes(List<string> keep)
    {
        var key = Key(keep);
        if (_cache.TryGetValue(key, out bool known))
        {
            return known;
        }
        var run = Execute(_candidates.Except(keep));
        Runs++;
        bool pass = !run.TimedOut && run.ExitCode == _reference && (!_sameOutput || run.StandardOutput == _referenceOutput);
        _cache[key] = pass;
        _log?.Invoke($"run {Runs,3}: keep {(keep.Count == 0 ? "(none)" : string.Join(' ', keep))} -> {(pass ? "passes" : run.IllegalInstruction ? "SIGILL" : run.TimedOut ? "timeout" : $"exit {run.ExitCode}")}");
        return pass;
    }

    private QemuRun Execute(IEnumerable<string> remove)
    {
        var spec = qemu.CpuSpec(catalog, _base!, remove, out _);
        return qemu.Run(["-cpu", spec, .. _command], _timeout);
    }

    private string FromQemu(string qemuName)
    {
        foreach (var feature in _base!.Features)
        {
            if (catalog.QemuName(feature) == qemuName)
            {
                return feature;
            }
        }
        return qemuName;
    }

    private static string Key(IEnumerable<string> features) => string.Join(',', features.Order(StringComparer.Ordinal));
}
