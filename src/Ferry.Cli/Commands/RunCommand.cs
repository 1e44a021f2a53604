using System.CommandLine;
using System.Globalization;
using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry run`: compile and run a module locally, like `wasmtime run`. A module that imports
/// wasi_snapshot_preview1 runs as a WASI command: stdio passes through, --dir/--env configure what it sees,
/// argv[0] is the module's file name, and the exit status is its proc_exit code.
/// </summary>
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
        var dirs = new Option<string[]>("--dir")
        {
            Description = "Preopen a host directory for a WASI program: HOST or HOST::GUEST (repeatable)",
            AllowMultipleArgumentsPerToken = false,
        };
        var envs = new Option<string[]>("--env")
        {
            Description = "Set an environment variable for a WASI program: KEY=VALUE, or KEY to pass the host's value (repeatable)",
            AllowMultipleArgumentsPerToken = false,
        };
        var snapshot = new Option<string?>("--snapshot") { Description = "Checkpoint to this file when --checkpoint-after elapses or on SIGUSR1, then exit 0" };
        var checkpointAfter = new Option<string?>("--checkpoint-after") { Description = "Checkpoint after this long, e.g. 500ms or 2s (needs --snapshot)" };
        var on = new Option<string?>("--on") { Description = "Run it on this agent (http://HOST:PORT) as a migratable workload; prints its id" };
        var name = new Option<string?>("--name") { Description = "With --on: the workload's name (default: the module's file name)" };
        var confidentialFlag = new Option<bool>("--confidential")
        {
            Description = "With --on: run as a confidential workload (measured; migrates only sealed, to runtimes the fleet trust file attests; see docs/confidential.md)",
        };
        var command = new Command("run", "Run a WebAssembly module (its _start, or --invoke an export)")
        {
            module, guestArgs, invoke, memMax, dirs, envs, snapshot, checkpointAfter, on, name, confidentialFlag,
        };
        command.SetAction(parse =>
        {
            var modulePath = parse.GetValue(module)!;
            if (modulePath.StartsWith('-'))
            {
                Console.Error.WriteLine($"ferry run: unknown option '{modulePath}' (see ferry run --help)");
                return ExitCodes.Usage;
            }
            var preopens = new List<WasiPreopen>();
            foreach (var d in parse.GetValue(dirs) ?? [])
            {
                if (!TryParseDir(d, out var preopen, out var why))
                {
                    Console.Error.WriteLine($"ferry run: --dir {d}: {why}");
                    return ExitCodes.Usage;
                }
                preopens.Add(preopen);
            }
            var env = new List<string>();
            foreach (var e in parse.GetValue(envs) ?? [])
            {
                var eq = e.IndexOf('=');
                if (eq == 0 || e.Length == 0)
                {
                    Console.Error.WriteLine($"ferry run: --env '{e}': expected KEY=VALUE or KEY");
                    return ExitCodes.Usage;
                }
                if (eq < 0)
                {
                    var value = Environment.GetEnvironmentVariable(e);
                    if (value is null)
                    {
                        Console.Error.WriteLine($"ferry run: --env {e}: not set in this environment (use {e}=VALUE)");
                        return ExitCodes.Usage;
                    }
                    env.Add($"{e}={value}");
                }
                else
                {
                    env.Add(e);
                }
            }
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
            if (parse.GetValue(on) is { } agent)
            {
                if (preopens.Count > 0 || parse.GetValue(invoke) is not null || parse.GetValue(snapshot) is not null)
                {
                    Console.Error.WriteLine("ferry run: --on runs the program's _start on an agent; --dir, --invoke and --snapshot do not apply (checkpoint it there with `ferry checkpoint ID --on URL`)");
                    return ExitCodes.Usage;
                }
                return RemoteCommands.Run(agent, modulePath, parse.GetValue(guestArgs) ?? [], limit, env, parse.GetValue(name), parse.GetValue(confidentialFlag));
            }
            if (parse.GetValue(confidentialFlag))
            {
                Console.Error.WriteLine("ferry run: --confidential goes with --on (confidential workloads run on an agent)");
                return ExitCodes.Usage;
            }
            if (parse.GetValue(name) is not null)
            {
                Console.Error.WriteLine("ferry run: --name goes with --on");
                return ExitCodes.Usage;
            }
            var snapshotPath = parse.GetValue(snapshot);
            TimeSpan? after = null;
            if (parse.GetValue(checkpointAfter) is { } afterText)
            {
                if (!DurationParser.TryParse(afterText, out var d))
                {
                    Console.Error.WriteLine($"ferry run: --checkpoint-after: not a duration: '{afterText}' (examples: 500ms, 2s)");
                    return ExitCodes.Usage;
                }
                if (snapshotPath is null)
                {
                    Console.Error.WriteLine("ferry run: --checkpoint-after needs --snapshot FILE");
                    return ExitCodes.Usage;
                }
                after = d;
            }
            if (snapshotPath is not null)
            {
                if (parse.GetValue(invoke) is not null)
                {
                    Console.Error.WriteLine("ferry run: --snapshot runs the program's _start; it cannot be combined with --invoke");
                    return ExitCodes.Usage;
                }
                return Hosting.LocalGuest.RunCheckpointable(modulePath, parse.GetValue(guestArgs) ?? [], limit, preopens, env, snapshotPath, after);
            }
            return Run(modulePath, parse.GetValue(guestArgs) ?? [], parse.GetValue(invoke), limit, preopens, env);
        });
        return command;
    }

    /// <summary>Parses HOST or HOST::GUEST (the guest name defaults to HOST as written, like wasmtime).</summary>
    public static bool TryParseDir(string text, out WasiPreopen preopen, out string why)
    {
        preopen = null!;
        why = "";
        var sep = text.IndexOf("::", StringComparison.Ordinal);
        var host = sep < 0 ? text : text[..sep];
        var guest = sep < 0 ? text : text[(sep + 2)..];
        if (host.Length == 0 || guest.Length == 0)
        {
            why = "expected HOST or HOST::GUEST";
            return false;
        }
        if (!Directory.Exists(host))
        {
            why = $"no such directory: {host}";
            return false;
        }
        preopen = new WasiPreopen(host, guest);
        return true;
    }

    private static int Run(string path, string[] args, string? invoke, ulong? memMax, List<WasiPreopen> preopens, List<string> env)
    {
        // FERRY_TIMING=1: print where start-up time goes (load = read + decode + validate; compile = IL emission;
        // instantiate; run includes the JIT compiling each function on first call).
        var timing = Environment.GetEnvironmentVariable("FERRY_TIMING") == "1";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Phase(string name)
        {
            if (!timing) return;
            Console.Error.WriteLine($"[timing] {name}: {clock.Elapsed.TotalMilliseconds:F1} ms");
            clock.Restart();
        }
        Module module;
        try
        {
            module = ModuleLoader.Load(path);
            Phase("load (read, decode, validate)");
        }
        catch (Exception e) when (e is WasmException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry run: {path}: {e.Message}");
            return ExitCodes.Failure;
        }

        var options = new InstanceOptions { MaxMemoryBytes = memMax };
        Instance? instance = null;
        IGuestEnvironment? environment = null;
        try
        {
            environment = GuestEnvironments.For(module, new WasiOptions { Args = [Path.GetFileName(path), .. args], Env = env, Preopens = preopens });
            if (environment is EmptyEnvironment && (preopens.Count > 0 || env.Count > 0))
            {
                Console.Error.WriteLine($"ferry run: {path} does not import {WasiAbi.ModuleName}: --dir and --env do not apply");
                return ExitCodes.Usage;
            }
            return WasmThread.Run(() =>
            {
                var compiled = ModuleCompiler.Compile(module, CompileOptions.Default);
                Phase("compile (IL emission)");
                var linker = new Linker();
                environment.Define(linker);
                instance = Instance.Instantiate(compiled, linker, options);
                environment.Bind(instance);
                Phase("instantiate");
                if (invoke is not null) return InvokeExport(instance, invoke, args);
                if (!instance.Exports.TryGetValue("_start", out var start) || start is not FuncRef startFn)
                {
                    Console.Error.WriteLine($"ferry run: {path} has no _start export; use --invoke NAME to call an export");
                    return ExitCodes.Usage;
                }
                try
                {
                    Instance.Invoke(startFn);
                    Phase("run (JIT on first calls + execution)");
                    return ExitCodes.Ok;
                }
                catch (Exception e) when (environment.ExitCodeOf(e) is { } code)
                {
                    Phase("run (JIT on first calls + execution)");
                    return code;
                }
                finally
                {
                    environment.Flush();
                }
            });
        }
        catch (Exception e) when (environment?.ExitCodeOf(e) is { } code)
        {
            // The program's own exit from an --invoke'd export.
            return code;
        }
        catch (WasiConfigurationException e)
        {
            Console.Error.WriteLine($"ferry run: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (TrapException trap)
        {
            environment?.Flush();
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
        finally
        {
            environment?.Dispose();
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
