using System.CommandLine;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry cpu model --needs SCAN.json --host HOST.json...`: the lowest QEMU CPU model that covers what the
/// workload needs and every host can run, as a QEMU -cpu string and a libvirt snippet. `--list` shows the data.
/// </summary>
public static class CpuModelCommand
{
    public static Command Create()
    {
        var needs = new Option<string?>("--needs") { Description = "`ferry cpu scan --json` output of the workload" };
        var hosts = new Option<string[]>("--host") { Description = "`ferry cpu host --json` output of a target host, or qemu:MODEL (repeatable)", AllowMultipleArgumentsPerToken = true };
        var list = new Option<bool>("--list") { Description = "List the QEMU CPU models known (name, vendor, psABI level, feature count)" };
        var json = new Option<bool>("--json") { Description = "Write the choice as JSON" };
        var command = new Command("model", "Pick the lowest QEMU CPU model (+/- features) that covers a workload and runs on every given host")
        {
            needs, hosts, list, json,
        };
        command.SetAction(parse =>
        {
            var catalog = CpuModelCatalog.Default;
            if (parse.GetValue(list))
            {
                Console.WriteLine($"QEMU CPU models from {catalog.Source}:");
                foreach (var m in catalog.Models.Where(m => m.Is64Bit))
                {
                    var level = CpuFeatureInfo.SupportedLevel(m.Features);
                    Console.WriteLine($"  {m.Name,-24} {m.Alias ?? "",-28} {m.Vendor,-13} {level.ToPsAbiName(),-10} {m.Features.Count,3} features");
                }
                return ExitCodes.Ok;
            }
            var needsPath = parse.GetValue(needs);
            if (needsPath is null)
            {
                Console.Error.WriteLine("cpu model: --needs SCAN.json is required (or use --list)");
                return ExitCodes.Usage;
            }
            try
            {
                var workload = WorkloadNeeds.Load(needsPath);
                var targets = (parse.GetValue(hosts) ?? []).Select(h => HostProfile.Load(h, catalog)).ToList();
                var choice = ModelSelector.Choose(catalog, workload, targets);
                string qemu = ModelSelector.QemuCpuArgument(catalog, choice);
                string libvirt = ModelSelector.LibvirtXml(catalog, choice);
                bool asJson = parse.GetValue(json);
                if (asJson)
                {
                    CpuOutput.WriteJson(w =>
                    {
                        w.WriteStartObject();
                        w.WriteString("tool", "ferry cpu model");
                        w.WriteString("model", choice.Model.Name);
                        w.WriteString("libvirt_model", choice.Model.LibvirtName);
                        WriteArray(w, "add", choice.Add);
                        WriteArray(w, "remove", choice.Remove);
                        WriteArray(w, "unsatisfiable", choice.Unsatisfiable);
                        w.WriteBoolean("fits", choice.Fits);
                        w.WriteString("qemu_cpu", qemu);
                        w.WriteString("libvirt_xml", libvirt);
                        w.WriteString("data_source", catalog.Source);
                        w.WriteEndObject();
                    });
                }
                var o = CpuOutput.Human(asJson);
                o.WriteLine($"workload {workload.Source}: needs {workload.Level.ToPsAbiName()} + {CpuOutput.Join(workload.Required.Where(f => CpuFeatureInfo.TryParse(f, out var c) && CpuFeatureInfo.Level(c) is IsaLevel.None).Order())}");
                o.WriteLine($"hosts: {(targets.Count == 0 ? "(none given: no host constraint)" : string.Join(", ", targets.Select(t => $"{t.Name} ({t.Level.ToPsAbiName()})")))}");
                o.WriteLine($"model: {choice.Model.Name}{(choice.Model.Alias is { } a ? $" ({a})" : "")} — {choice.Model.ModelId}");
                if (choice.Add.Count > 0)
                {
                    o.WriteLine($"  add (needed, not in the model): {string.Join(' ', choice.Add)}");
                }
                if (choice.Remove.Count > 0)
                {
                    o.WriteLine($"  remove (in the model, missing on some host): {string.Join(' ', choice.Remove)}");
                }
                if (!choice.Fits)
                {
                    o.WriteLine($"  NOT SATISFIABLE: some host lacks {string.Join(' ', choice.Unsatisfiable)} (see `ferry cpu compat`)");
                }
                o.WriteLine();
                o.WriteLine($"qemu:    -cpu {qemu}");
                o.WriteLine("libvirt:");
                o.WriteLine(libvirt);
                o.WriteLine($"(model data: {catalog.Source})");
                return choice.Fits ? ExitCodes.Ok : ExitCodes.Failure;
            }
            catch (InputException e)
            {
                Console.Error.WriteLine($"cpu model: {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }

    internal static void WriteArray(System.Text.Json.Utf8JsonWriter w, string name, IEnumerable<string> items)
    {
        w.WriteStartArray(name);
        foreach (var item in items)
        {
            w.WriteStringValue(item);
        }
        w.WriteEndArray();
    }
}
