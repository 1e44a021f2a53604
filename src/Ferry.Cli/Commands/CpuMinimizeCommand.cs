using System.CommandLine;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Models;
using Ferry.CpuFeatures.Probe;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu minimize -- CMD [ARGS]`: a small feature set the command still succeeds with (ddmin).</summary>
public static class CpuMinimizeCommand
{
    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "CPU model whose features are minimised", DefaultValueFactory = _ => "Skylake-Client-v4" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds per run before it counts as a failure", DefaultValueFactory = _ => 60 };
        var sameOutput = new Option<bool>("--same-output") { Description = "Also require stdout identical to the reference run" };
        var json = new Option<bool>("--json") { Description = "Write the result as JSON" };
        var command = new Argument<string[]>("command") { Description = "The program and its arguments (after --)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("minimize", "Find a small CPU feature set under which a command still succeeds (delta debugging under qemu-user)")
        {
            baseModel, timeout, sameOutput, json, command,
        };
        cmd.SetAction(parse =>
        {
            var catalog = CpuModelCatalog.Default;
            if ((parse.GetValue(command) ?? []).Length == 0)
            {
                Console.Error.WriteLine("cpu minimize: usage: ferry cpu minimize [--base MODEL] -- CMD [ARGS]");
                return ExitCodes.Usage;
            }
            var qemu = new QemuUser();
            if (!qemu.IsInstalled)
            {
                Console.Error.WriteLine($"cpu minimize: {qemu.Path} is missing (Debian package qemu-user; ./setup installs it)");
                return ExitCodes.Failure;
            }
            var model = catalog.Find(parse.GetValue(baseModel)!);
            if (model is null)
            {
                Console.Error.WriteLine($"cpu minimize: unknown CPU model '{parse.GetValue(baseModel)}' (see `ferry cpu model --list`)");
                return ExitCodes.Usage;
            }
            bool asJson = parse.GetValue(json);
            var o = CpuOutput.Human(asJson);
            var minimizer = new FeatureMinimizer(qemu, catalog);
            var result = minimizer.Minimize(model, parse.GetValue(command) ?? [], TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(timeout))),
                parse.GetValue(sameOutput), line => o.WriteLine(line));
            var kept = result.Kept.Select(f => CpuFeatureInfo.TryParse(f, out var c) ? c : CpuFeature.None).Aggregate(FeatureSet.Empty, (s, f) => s | FeatureSet.Of(f));
            var level = CpuFeatureInfo.ImpliedLevel(kept);
            if (asJson)
            {
                CpuOutput.WriteJson(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("tool", "ferry cpu minimize");
                    w.WriteString("base", model.Name);
                    CpuModelCommand.WriteArray(w, "candidates", result.Candidates);
                    CpuModelCommand.WriteArray(w, "not_toggled", result.NotToggled);
                    CpuModelCommand.WriteArray(w, "kept", result.Kept);
                    w.WriteString("level", level.ToPsAbiName());
                    w.WriteNumber("runs", result.Runs);
                    w.WriteString("qemu_cpu", result.CpuSpec);
                    w.WriteString("failure", result.Failure);
                    w.WriteEndObject();
                });
            }
            if (result.Failure is not null)
            {
                o.WriteLine($"minimize: {result.Failure}");
                return ExitCodes.Failure;
            }
            o.WriteLine();
            o.WriteLine($"keeps {result.Kept.Count} of {result.Candidates.Count} features of {model.Name}: {CpuOutput.Join(result.Kept, "(none beyond the x86-64 baseline)")}");
            o.WriteLine($"implied psABI level: {level.ToPsAbiName()}; {result.Runs} runs (exhaustive search would be 2^{result.Candidates.Count})");
            o.WriteLine($"qemu: -cpu {result.CpuSpec}");
            if (result.NotToggled.Count > 0)
            {
                o.WriteLine($"not toggled (TCG cannot emulate them, AVX-512 included, or qemu cannot name them): {string.Join(' ', result.NotToggled)}");
            }
            o.WriteLine("note: TCG cannot emulate AVX-512, so minimisation never finds AVX-512 needs; `cpu scan` reports them statically.");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
