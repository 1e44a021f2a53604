using System.CommandLine;
using Ferry.Wasm.SpecTests;

namespace Ferry.Cli.Commands;

/// <summary>`ferry spectest PATH...`: runs official WebAssembly spec tests (.wast or wast2json .json) against the engine.</summary>
public static class SpecTestCommand
{
    public static Command Create()
    {
        var paths = new Argument<string[]>("paths") { Description = ".wast/.json files or directories of them", Arity = ArgumentArity.OneOrMore };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "List every failure with file, line and reason" };
        var memory64 = new Option<bool>("--memory64") { Description = "Convert .wast files with the memory64 proposal enabled (automatic under a 'memory64' directory)" };
        var command = new Command("spectest", "Run WebAssembly spec tests (.wast or converted .json) and report N passed, M failed")
        {
            paths, verbose, memory64,
        };
        command.SetAction(parse => Run(parse.GetValue(paths)!, parse.GetValue(verbose), parse.GetValue(memory64)));
        return command;
    }

    private static int Run(string[] inputs, bool verbose, bool memory64)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
            {
                files.AddRange(Directory.EnumerateFiles(input, "*.wast", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
            }
            else if (File.Exists(input))
            {
                files.Add(input);
            }
            else
            {
                Console.Error.WriteLine($"ferry spectest: no such file or directory: {input}");
                return ExitCodes.Usage;
            }
        }
        var temp = Path.Combine(Path.GetTempPath(), $"ferry-spectest-{Environment.ProcessId}");
        var runner = new SpecTestRunner();
        int passed = 0, failed = 0, skipped = 0;
        try
        {
            foreach (var file in files)
            {
                SpecFileResult result;
                try
                {
                    var json = file.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                        ? file
                        : SpecTestRunner.Convert(file, Path.Combine(temp, Path.GetFileNameWithoutExtension(file)),
                            memory64 || file.Contains("memory64", StringComparison.Ordinal));
                    result = runner.RunJson(json);
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine($"{file}: {e.Message}");
                    failed++;
                    continue;
                }
                passed += result.Passed;
                failed += result.Failed;
                skipped += result.Skipped;
                if (verbose)
                {
                    foreach (var f in result.Failures) Console.WriteLine($"{file}:{f.Line}: {f.Command}: {f.Reason}");
                }
                if (verbose || result.Failed > 0)
                {
                    Console.Error.WriteLine($"{Path.GetFileName(file)}: {result.Passed} passed, {result.Failed} failed" + (result.Skipped > 0 ? $", {result.Skipped} skipped" : ""));
                }
            }
        }
        finally
        {
            try
            {
                Directory.Delete(temp, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        if (skipped > 0)
        {
            Console.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped (text-format assertions: Ferry reads the binary format only)");
        }
        else
        {
            Console.WriteLine($"{passed} passed, {failed} failed");
        }
        return failed == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }
}
