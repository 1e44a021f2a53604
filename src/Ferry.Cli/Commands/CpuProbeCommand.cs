using System.CommandLine;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;
using Ferry.CpuFeatures.Probe;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu probe --model NAME -- CMD [ARGS]`: run a program on an emulated CPU model (disable-and-try).</summary>
public static class CpuProbeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "QEMU CPU model to emulate (e.g. Nehalem, Haswell-noTSX, SapphireRapids-v1); required" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds before the run is killed", DefaultValueFactory = _ => 120 };
        var json = new Option<bool>("--json") { Description = "Write the outcome as JSON" };
        var command = new Argument<string[]>("command") { Description = "The program and its arguments (after --)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("probe", "Run a program under qemu-user with a CPU model; report success or the illegal instruction (address, mnemonic, function)")
        {
            model, timeout, json, command,
        };
        cmd.SetAction(parse =>
        {
            var catalog = CpuModelCatalog.Default;
            if (parse.GetValue(model) is null || (parse.GetValue(command) ?? []).Length == 0)
            {
                Console.Error.WriteLine("cpu probe: usage: ferry cpu probe --model NAME -- CMD [ARGS]");
                return ExitCodes.Usage;
            }
            var qemu = new QemuUser();
            if (!qemu.IsInstalled)
            {
                Console.Error.WriteLine($"cpu probe: {qemu.Path} is missing (Debian package qemu-user; ./setup installs it)");
                return ExitCodes.Failure;
            }
            var name = parse.GetValue(model)!;
            var chosen = catalog.Find(name);
            if (chosen is null && !qemu.KnownModels.Contains(name))
            {
                Console.Error.WriteLine($"cpu probe: unknown CPU model '{name}' (see `ferry cpu model --list`)");
                return ExitCodes.Usage;
            }
            IReadOnlyList<string> unnamed = [];
            string spec = chosen is null ? name : qemu.CpuSpec(catalog, chosen, [], out unnamed);
            var program = parse.GetValue(command) ?? [];
            var outcome = new ProgramProbe(qemu).Run(spec, program, TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(timeout))));
            bool asJson = parse.GetValue(json);
            var avx512 = chosen is null ? [] : chosen.Features.Where(f => CpuFeatureInfo.TryParse(f, out var c) && CpuFeatureInfo.Avx512Family.Contains(c)).Order().ToList();
            if (asJson)
            {
                CpuOutput.WriteJson(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("tool", "ferry cpu probe");
                    w.WriteString("model", chosen?.Name ?? name);
                    w.WriteString("qemu_cpu", spec);
                    w.WriteBoolean("succeeded", outcome.Succeeded);
                    WriteNullable(w, "exit_code", outcome.ExitCode);
                    WriteNullable(w, "signal", outcome.Signal);
                    w.WriteBoolean("timed_out", outcome.TimedOut);
                    if (outcome.Illegal is { } ill)
                    {
                        w.WriteStartObject("illegal_instruction");
                        w.WriteString("address", $"0x{ill.Address:x}");
                        w.WriteString("file", ill.File);
                        w.WriteString("elf_address", ill.ElfAddress is ulong a ? $"0x{a:x}" : null);
                        w.WriteString("instruction", ill.Disassembly);
                        w.WriteString("function", ill.Function);
                        CpuModelCommand.WriteArray(w, "needs", ill.Needs.Names());
                        w.WriteEndObject();
                    }
                    CpuModelCommand.WriteArray(w, "tcg_dropped", outcome.TcgDropped);
                    CpuModelCommand.WriteArray(w, "model_avx512_not_emulated", avx512);
                    w.WriteEndObject();
                });
            }
            var o = CpuOutput.Human(asJson);
            o.WriteLine($"probe: {qemu.Path} -cpu {spec} {string.Join(' ', program)}");
            string result = outcome.TimedOut ? "timed out (killed)"
                : outcome.Succeeded ? "succeeded (exit 0)"
                : outcome.Signal is int s ? $"killed by signal {s}{(s == 4 ? " (SIGILL)" : "")}"
                : $"exited with {outcome.ExitCode}";
            o.WriteLine($"result: {result}");
            if (outcome.Illegal is { } illegal)
            {
                string where = illegal.File is null ? "(no file mapped there)" : $"{illegal.File} at ELF address 0x{illegal.ElfAddress:x}";
                o.WriteLine($"illegal instruction at 0x{illegal.Address:x}: {where}");
                o.WriteLine($"  {illegal.Disassembly ?? "(not decoded)"}   in {illegal.Function ?? "(no symbol)"}   needs: {CpuOutput.Join(illegal.Needs.Names(), "(nothing the model lacks: an invalid encoding or a deliberate UD2)")}");
            }
            if (outcome.TcgDropped.Count > 0)
            {
                o.WriteLine($"note: TCG dropped features it cannot emulate from the model: {string.Join(' ', outcome.TcgDropped)}");
            }
            if (avx512.Count > 0 || outcome.Illegal?.Needs.Overlaps(CpuFeatureInfo.Avx512Family) == true)
            {
                o.WriteLine("note: TCG cannot emulate AVX-512: qemu-user runs this model without it, so AVX-512 code raises SIGILL here even though the real CPU has it.");
            }
            if (unnamed.Count > 0)
            {
                o.WriteLine($"note: this qemu-user ({qemu.Version()}) predates the model; built from `base` without: {string.Join(' ', unnamed)}");
            }
            if (!asJson && outcome.StandardOutput.Length > 0)
            {
                o.WriteLine("--- program output (stdout) ---");
                o.Write(Tail(outcome.StandardOutput, 2000));
            }
            return outcome.Succeeded ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return cmd;
    }

    private static void WriteNullable(System.Text.Json.Utf8JsonWriter w, string name, int? value)
    {
        if (value is int v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static string Tail(string text, int max) => text.Length <= max ? text : "…" + text[^max..];
}
