using System.Text;

namespace Ferry.CpuFeatures.Models;

/// <summary>The chosen CPU model and the feature adjustments that make it fit the workload and the hosts.</summary>
public sealed record ModelChoice(QemuCpuModel Model, IReadOnlyList<string> Add, IReadOnlyList<string> Remove, IReadOnlyList<string> Unsatisfiable)
{
    /// <summary>Every host can run it and the workload finds everything it needs.</summary>
    public bool Fits => Unsatisfiable.Count == 0;
}

/// <summary>
/// `cpu model`: the lowest QEMU model (fewest features) that covers the workload's required features and that
/// every given host can run, with +feat for needs the model lacks and -feat for model features some host lacks.
/// Presenting the lowest such model keeps the most future hosts able to take the VM.
/// </summary>
public static class ModelSelector
{
    public static ModelChoice Choose(CpuModelCatalog catalog, WorkloadNeeds needs, IReadOnlyList<HostProfile> hosts)
    {
        // Features every host offers; with no hosts there is no host constraint.
        IReadOnlySet<string>? common = null;
        foreach (var host in hosts)
        {
            common = common is null ? new HashSet<string>(host.Features, StringComparer.Ordinal) : common.Intersect(host.Features).ToHashSet(StringComparer.Ordinal);
        }
        var known = catalog.KnownFeatures;
        var unsatisfiable = common is null ? [] : needs.Required.Where(f => known.Contains(f) && !common.Contains(f)).Order(StringComparer.Ordinal).ToList();
        string? vendor = hosts.Select(h => h.Vendor).Where(v => v is not null).GroupBy(v => v).OrderByDescending(g => g.Count()).Select(g => g.Key).FirstOrDefault();

        ModelChoice? best = null;
        (int Adjustments, int Size, int VendorMismatch, int Order) bestScore = default;
        for (int i = 0; i < catalog.Models.Count; i++)
        {
            var model = catalog.Models[i];
            if (!model.Is64Bit)
            {
                continue;
            }
            var add = needs.Required.Where(f => known.Contains(f) && !model.Features.Contains(f) && (common is null || common.Contains(f)))
                .Order(StringComparer.Ordinal).ToList();
            var remove = common is null ? [] : model.Features.Where(f => !common.Contains(f)).Order(StringComparer.Ordinal).ToList();
            var score = (add.Count + remove.Count, model.Features.Count + add.Count - remove.Count,
                vendor is not null && model.Vendor != vendor ? 1 : 0, i);
            if (best is null || score.CompareTo(bestScore) < 0)
            {
                best = new ModelChoice(model, add, remove, unsatisfiable);
                bestScore = score;
            }
        }
        return best ?? throw new InvalidOperationException("the model catalog has no 64-bit model");
    }

    /// <summary>`-cpu Model,+feat,-feat` with QEMU's feature spellings.</summary>
    public static string QemuCpuArgument(CpuModelCatalog catalog, ModelChoice choice)
    {
        var sb = new StringBuilder(choice.Model.Name);
        foreach (var f in choice.Add)
        {
            sb.Append(",+").Append(catalog.QemuName(f));
        }
        foreach (var f in choice.Remove)
        {
            sb.Append(",-").Append(catalog.QemuName(f));
        }
        return sb.ToString();
    }

    /// <summary>A libvirt domain `cpu` element: custom mode, the model, required and disabled features.</summary>
    public static string LibvirtXml(CpuModelCatalog catalog, ModelChoice choice)
    {
        var sb = new StringBuilder();
        sb.AppendLine("<cpu mode='custom' match='exact' check='partial'>");
        sb.AppendLine($"  <model fallback='forbid'>{choice.Model.LibvirtName}</model>");
        foreach (var f in choice.Add)
        {
            sb.AppendLine($"  <feature policy='require' name='{catalog.QemuName(f)}'/>");
        }
        foreach (var f in choice.Remove)
        {
            sb.AppendLine($"  <feature policy='disable' name='{catalog.QemuName(f)}'/>");
        }
        sb.Append("</cpu>");
        return sb.ToString();
    }
}
