using System.CommandLine;
using System.Globalization;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;

namespace Ferry.Cli.Commands;

/// <summary>`ferry run`: compile and run a module locally, like `wasmtime run`.</summary>
public static class RunCommand
{
    /// <summary>Exit code when the guest traps (as wasmtime's CLI: 128 + SIGABRT).</summary>
    public const int TrapExitCode = 134;

    public static Command Create()
    {
        var module = new Argument<string>("module") { Description = "The .wasm module to run" };
        var guestArgs = new Argument<string[]>("args") { Description = "Arguments for the program (everything after the module)", Arity = ArgumentArity.ZeroOrMore };
        var invoke = new Option<string?>("--invoke") { Description = "Call this export with the arguments (as numbers) and print its results, instead of running _start" };
        var memMax = new Option<string?>("--mem-max") { Description = "Upper bound on linear memory, e.g. 512M or 4G" };
        var command = new Command("run", "Run a WebAssembly module (its _start, or --invoke an export)")
        {
            module, guestArgs, invoke, memMax,
        };
        command.SetAction(parse =>
        {
            ulong? limit = null;
            if (parse.GetValue(memMax) is { } text)
            {
                if (!SizeParser.TryParse(text, out var bytes))
                {
                    Console.Error.WriteLine($"ferry run: --mem-max: not a size: '{text}' (examples: 512M, 4G)");
                    return ExitCodes.Usage;
                }
                limit = bytes;
            }
            return Run(parse.GetValue(module)!, parse.GetValue(guestArgs) ?? [], parse.GetValue(invoke), limit);
        });
        return command;
    }

    private static int Run(string path, string[] args, string? invoke, ulong? memMax)
    {
        Module module;
        try
        {
            module = ModuleLoader.Load(path);
        }
        catch (Exception e) when (e is WasmException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry run: {path}: {e.Message}");
            return ExitCodes.Failure;
        }

        var options = new InstanceOptions { MaxMemoryBytes = memMax };
        Instance? instance = null;
        try
        {
            return WasmThread.Run(() =>
            {
                var compiled = ModuleCompiler.Compile(module);
                instance = Instance.Instantiate(compiled, new Linker(), options);
                if (invoke is not null) return InvokeExport(instance, invoke, args);
                if (!instance.Exports.TryGetValue("_start", out var start) || start is not FuncRef startFn)
                {
                    Console.Error.WriteLine($"ferry run: {path} has no _start export; use --invoke NAME to call an export");
                    return ExitCodes.Usage;
                }
                Instance.Invoke(startFn);
                return ExitCodes.Ok;
            });
        }
        catch (TrapException trap)
        {
            Console.Error.WriteLine($"ferry run: wasm trap: {trap.Message}");
            if (instance is not null)
            {
                Console.Error.WriteLine("wasm backtrace:");
                foreach (var frame in instance.Backtrace(trap)) Console.Error.WriteLine($"  {frame}");
            }
            return TrapExitCode;
        }
        catch (WasmException e)
        {
            Console.Error.WriteLine($"ferry run: {path}: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"ferry run: {e.Message}");
            return ExitCodes.Usage;
        }
    }

    private sealed class UsageException(string message) : Exception(message);

    private static int InvokeExport(Instance instance, string name, string[] args)
    {
        if (!instance.Exports.TryGetValue(name, out var export) || export is not FuncRef f)
        {
            throw new UsageException($"no exported function '{name}' (exports: {string.Join(", ", instance.Exports.Where(e => e.Value is FuncRef).Select(e => e.Key))})");
        }
        var ps = f.Type.Parameters;
        if (args.Length != ps.Length) throw new UsageException($"'{name}' takes {ps.Length} argument(s) ({f.Type}), {args.Length} given");
        var values = new WasmValue[ps.Length];
        for (var i = 0; i < ps.Length; i++) values[i] = ParseArg(args[i], ps[i]);
        foreach (var r in Instance.Invoke(f, values)) Console.WriteLine(Format(r));
        return ExitCodes.Ok;
    }

    private static WasmValue ParseArg(string s, Wasm.ValueType t)
    {
        var c = CultureInfo.InvariantCulture;
        var hex = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        try
        {
            return t switch
            {
                Wasm.ValueType.I32 => WasmValue.FromI32(hex ? (int)uint.Parse(s[2..], NumberStyles.HexNumber, c) : int.Parse(s, c)),
                Wasm.ValueType.I64 => WasmValue.FromI64(hex ? (long)ulong.Parse(s[2..], NumberStyles.HexNumber, c) : long.Parse(s, c)),
                Wasm.ValueType.F32 => WasmValue.FromF32(float.Parse(s, c)),
                Wasm.ValueType.F64 => WasmValue.FromF64(double.Parse(s, c)),
                _ => throw new UsageException($"cannot pass a {t.Name()} from the command line"),
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new UsageException($"'{s}' is not a valid {t.Name()}");
        }
    }

    private static string Format(WasmValue v) => v.Type switch
    {
        Wasm.ValueType.I32 => v.I32.ToString(CultureInfo.InvariantCulture),
        Wasm.ValueType.I64 => v.I64.ToString(CultureInfo.InvariantCulture),
        Wasm.ValueType.F32 => v.F32.ToString("R", CultureInfo.InvariantCulture),
        Wasm.ValueType.F64 => v.F64.ToString("R", CultureInfo.InvariantCulture),
        _ => v.ToString(),
    };
}
