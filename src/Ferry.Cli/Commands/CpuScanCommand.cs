using System.CommandLine;
using Ferry.CpuFeatures.Closure;
using Ferry.CpuFeatures.Features;
using Ferry.CpuFeatures.Json;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cpu scan [--json] PATH...`: required and gated CPU features of ELF files and their closure.</summary>
public static class CpuScanCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Write the scan as JSON on stdout (human text goes to stderr)" };
        var noDeps = new Option<bool>("--no-deps") { Description = "Do not follow DT_NEEDED into shared libraries" };
        var paths = new Argument<string[]>("paths") { Description = "ELF files or directories (scanned recursively)", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("scan", "Find the CPU features ELF files need: required (reachable without a CPU test) and gated (only behind one)")
        {
            json, noDeps, paths,
        };
        command.SetAction(parse =>
        {
            var inputs = parse.GetValue(paths) ?? [];
            if (inputs.Length == 0)
            {
                Console.Error.WriteLine("cpu scan: give at least one file or directory");
                return ExitCodes.Usage;
            }
            bool asJson = parse.GetValue(json);
            var session = new ScanSession(new ScanOptions { FollowNeeded = !parse.GetValue(noDeps) });
            var report = session.Run(inputs);
            if (asJson)
            {
                CpuOutput.WriteJson(w => ScanJson.Write(w, report));
            }
            PrintHuman(CpuOutput.Human(asJson), report);
            // Non-zero only when nothing could be analysed: per-file errors are part of a successful scan.
            return report.Inputs > 0 && report.InputErrors == report.Inputs ? ExitCodes.Failure : ExitCodes.Ok;
        });
        return command;
    }

    private static void PrintHuman(TextWriter o, ScanReport report)
    {
        foreach (var file in report.Files)
        {
            if (file.Role != FileRole.Input)
            {
                continue;
            }
            if (file.Error is { } error)
            {
                o.WriteLine($"{file.Path}: error ({error.KindName}): {error.Message}");
                continue;
            }
            var a = file.Analysis!;
            o.WriteLine($"{file.Path}: {a.Level.ToPsAbiName()} ({ScanJson.KindName(a.Kind)}; note {a.NoteCheck.Status})");
            o.WriteLine($"  required: {CpuOutput.Wrap(CpuOutput.Join(a.Required.Names()), 100, "            ")}");
            o.WriteLine($"  gated:    {CpuOutput.Wrap(CpuOutput.Join(a.Gated.Names()), 100, "            ")}");
            foreach (var (feature, location) in a.Examples.Where(e => a.Required.Contains(e.Key)).OrderBy(e => e.Key))
            {
                o.WriteLine($"    {CpuFeatureInfo.Name(feature),-16} {location.Function} @ 0x{location.Address:x}");
            }
        }
        var c = report.Closure;
        int dependencies = report.Files.Count(f => f.Role != FileRole.Input && f.Analysis is not null);
        o.WriteLine();
        o.WriteLine($"closure ({c.Mode}, {c.Files.Count} files, {dependencies} libraries): {c.Level.ToPsAbiName()}");
        o.WriteLine($"  required: {CpuOutput.Wrap(CpuOutput.Join(c.Required.Names()), 100, "            ")}");
        o.WriteLine($"  gated:    {CpuOutput.Wrap(CpuOutput.Join(c.Gated.Names()), 100, "            ")}");
        if (c.MissingLibraries.Count > 0)
        {
            o.WriteLine($"  missing libraries: {string.Join(' ', c.MissingLibraries)}");
        }
        int errors = report.Files.Count(f => f.Error is not null);
        o.WriteLine($"{report.Files.Count(f => f.Analysis is not null)} files analysed, {errors} errors, {report.SkippedNonElf} non-ELF files skipped, " +
            $"{report.Instructions:N0} instructions in {report.Elapsed.TotalSeconds:F2} s");
    }
}
