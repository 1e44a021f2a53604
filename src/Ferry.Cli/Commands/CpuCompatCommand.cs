using System.CommandLine;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu compat --needs SCAN.json --host HOST.json...`: which hosts can receive the workload.</summary>
public static class CpuCompatCommand
{
    public static Command Create()
    {
        var needs = new Option<string>("--needs") { Description = "`ferry cpu scan --json` output of the workload (required)" };
        var hosts = new Option<string[]>("--host") { Description = "`ferry cpu host --json` output of a host, or qemu:MODEL (repeatable)", AllowMultipleArgumentsPerToken = true };
        var json = new Option<bool>("--json") { Description = "Write the verdicts as JSON" };
        var command = new Command("compat", "Which hosts can receive the workload, and what each one lacks")
        {
            needs, hosts, json,
        };
        command.SetAction(parse =>
        {
            var catalog = CpuModelCatalog.Default;
            if (parse.GetValue(needs) is null || (parse.GetValue(hosts) ?? []).Length == 0)
            {
                Console.Error.WriteLine("cpu compat: give --needs SCAN.json and at least one --host HOST.json|qemu:MODEL");
                return ExitCodes.Usage;
            }
            try
            {
                var workload = WorkloadNeeds.Load(parse.GetValue(needs)!);
                var targets = (parse.GetValue(hosts) ?? []).Select(h => HostProfile.Load(h, catalog)).ToList();
                var verdicts = Compatibility.Check(workload, targets);
                bool asJson = parse.GetValue(json);
                if (asJson)
                {
                    CpuOutput.WriteJson(w =>
                    {
                        w.WriteStartObject();
                        w.WriteString("tool", "ferry cpu compat");
                        w.WriteStartArray("hosts");
                        foreach (var v in verdicts)
                        {
                            w.WriteStartObject();
                            w.WriteString("host", v.Host.Name);
                            w.WriteString("source", v.Host.Source);
                            w.WriteString("level", v.Host.Level.ToPsAbiName());
                            w.WriteBoolean("can_receive", v.CanReceive);
                            CpuModelCommand.WriteArray(w, "missing", v.Missing);
                            CpuModelCommand.WriteArray(w, "gated_available", v.GatedAvailable);
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                        w.WriteEndObject();
                    });
                }
                var o = CpuOutput.Human(asJson);
                o.WriteLine($"workload {workload.Source}: needs {workload.Level.ToPsAbiName()}, {workload.Required.Count} features required, {workload.Gated.Count} gated");
                foreach (var v in verdicts)
                {
                    string verdict = v.CanReceive ? "can receive" : $"CANNOT receive: lacks {string.Join(' ', v.Missing)}";
                    o.WriteLine($"  {v.Host.Name,-28} {v.Host.Level.ToPsAbiName(),-10} {verdict}");
                    if (v.CanReceive && workload.Gated.Count > 0)
                    {
                        o.WriteLine($"  {"",-28} {"",-10} gated paths usable there: {CpuOutput.Join(v.GatedAvailable)}");
                    }
                }
                return verdicts.Any(v => v.CanReceive) ? ExitCodes.Ok : ExitCodes.Failure;
            }
            catch (InputException e)
            {
                Console.Error.WriteLine($"cpu compat: {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }
}
