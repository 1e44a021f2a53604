namespace Ferry.CpuFeatures.Models;

/// <summary>Whether one host can receive the workload, what it lacks, and which gated fast paths it offers.</summary>
public sealed record HostVerdict(HostProfile Host, bool CanReceive, IReadOnlyList<string> Missing, IReadOnlyList<string> GatedAvailable);

/// <summary>`cpu compat`: every required feature must be on the host; gated ones only change which path runs.</summary>
public static class Compatibility
{
    public static IReadOnlyList<HostVerdict> Check(WorkloadNeeds needs, IReadOnlyList<HostProfile> hosts) =>
        [.. hosts.Select(host =>
        {
            var missing = needs.Required.Where(f => !host.Features.Contains(f)).Order(StringComparer.Ordinal).ToList();
            var gated = needs.Gated.Where(host.Features.Contains).Order(StringComparer.Ordinal).ToList();
            return new HostVerdict(host, missing.Count == 0, missing, gated);
        })];
}
