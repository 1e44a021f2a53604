using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Hosting;

/// <summary>Runs guest programs in this process with checkpoint support (`run --snapshot`, `restore`).</summary>
public static class LocalGuest
{
    public static IGuestEnvironment EnvironmentFor(Module module, WasiOptions options) => GuestEnvironments.For(module, options);

    public static int RunCheckpointable(string path, string[] args, ulong? memMax, List<WasiPreopen> preopens, List<string> env,
        string snapshotPath, TimeSpan? after)
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
        GuestProgram program;
        try
        {
            var environment = EnvironmentFor(module, new WasiOptions { Args = [Path.GetFileName(path), .. args], Env = env, Preopens = preopens });
            program = GuestProgram.Create(module, environment, CompileOptions.Default, new InstanceOptions { MaxMemoryBytes = memMax });
        }
        catch (WasiConfigurationException e)
        {
            Console.Error.WriteLine($"ferry run: {path}: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (WasmException e)
        {
            Console.Error.WriteLine($"ferry run: {path}: {e.Message}");
            return ExitCodes.Failure;
        }
        using (program)
        {
            return CheckpointingRunner.Run(program, snapshotPath, after, Path.GetFileName(path), program.Start);
        }
    }

    public static int Restore(string snapshotPath, string? modulePath, List<WasiPreopen> preopens, string? nextSnapshot, TimeSpan? after)
    {
        try
        {
            using var file = new FileStream(snapshotPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var reader = new SnapshotReader(file);
            var header = reader.Header;
            var bytes = header.ModuleCode ?? (modulePath is not null ? File.ReadAllBytes(modulePath)
                : throw new SnapshotFormatException("the snapshot does not carry its module; pass --module PATH"));
            var module = Wasm.Binary.ModuleDecoder.Decode(bytes);
            Wasm.Validation.ModuleValidator.Validate(module);
            var environment = GuestEnvironments.Restore(header.Wasi, new WasiOptions { Preopens = preopens });
            var compiled = ModuleCompiler.Compile(module);
            var linker = new Linker();
            environment.Define(linker);
            var restored = SnapshotRestorer.Restore(reader, compiled, linker);
            environment.Bind(restored.Instance);
            using var program = new GuestProgram(restored.Instance, environment);
            return CheckpointingRunner.Run(program, nextSnapshot, after, header.ModuleName, () => program.StartFrom(restored.Frames));
        }
        catch (Exception e) when (e is WasmException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry restore: {snapshotPath}: {e.Message}");
            return ExitCodes.Failure;
        }
    }
}
