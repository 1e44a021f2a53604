using System.CommandLine;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Host;
using Ferry.CpuFeatures.Models;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu host [--json]`: this machine's CPU features via CPUID.</summary>
public static class CpuHostCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Write the host profile as JSON (the input of `cpu model/compat --host`)" };
        var command = new Command("host", "Show this host's CPU: vendor, family/model, CPUID features (as /proc/cpuinfo names) and psABI level")
        {
            json,
        };
        command.SetAction(parse =>
        {
            if (!HostCpu.IsSupported)
            {
                Console.Error.WriteLine("cpu host: CPUID is only available on x86-64 hosts");
                return ExitCodes.Failure;
            }
            var catalog = CpuModelCatalog.Default;
            var cpu = HostCpu.Read(catalog);
            bool asJson = parse.GetValue(json);
            if (asJson)
            {
                CpuOutput.WriteJson(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("tool", "ferry cpu host");
                    w.WriteNumber("format", 1);
                    w.WriteString("hostname", Environment.MachineName);
                    w.WriteString("source", "cpuid");
                    w.WriteString("vendor", cpu.Vendor);
                    w.WriteNumber("family", cpu.Family);
                    w.WriteNumber("model", cpu.Model);
                    w.WriteNumber("stepping", cpu.Stepping);
                    w.WriteString("brand", cpu.Brand);
                    w.WriteString("level", cpu.Level.ToPsAbiName());
                    w.WriteStartArray("features");
                    foreach (var f in cpu.Features)
                    {
                        w.WriteStringValue(f);
                    }
                    w.WriteEndArray();
                    w.WriteStartArray("os_disabled");
                    foreach (var f in cpu.OsDisabled)
                    {
                        w.WriteStringValue(f);
                    }
                    w.WriteEndArray();
                    w.WriteString("feature_names", $"CPUID words as named by {catalog.Source}, in /proc/cpuinfo spelling");
                    w.WriteEndObject();
                });
            }
            var o = CpuOutput.Human(asJson);
            o.WriteLine($"{Environment.MachineName}: {cpu.Brand}");
            o.WriteLine($"  vendor {cpu.Vendor}, family {cpu.Family} (0x{cpu.Family:x}), model {cpu.Model} (0x{cpu.Model:x}), stepping {cpu.Stepping}");
            o.WriteLine($"  highest psABI level: {cpu.Level.ToPsAbiName()}");
            o.WriteLine($"  features ({cpu.Features.Count}): {CpuOutput.Wrap(string.Join(' ', cpu.Features), 100, "    ")}");
            if (cpu.OsDisabled.Count > 0)
            {
                o.WriteLine($"  in CPUID but not enabled by the OS: {string.Join(' ', cpu.OsDisabled)}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
