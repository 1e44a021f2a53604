using Ferry.Wasm;
using Ferry.Wasm.FerryAbi;
using Ferry.Wasm.Wasi;

namespace Ferry.Enclave.Runtime;

/// <summary>
/// Picks a program's environment from what its module imports (WASI, the <c>ferry</c> ABI, or nothing), and
/// rebuilds it from captured state, whose encoding says which it was.
/// </summary>
public static class GuestEnvironments
{
    /// <summary>A fresh environment for <paramref name="module"/>; <paramref name="options"/> gives argv, env, preopens and stdio.</summary>
    public static IGuestEnvironment For(Module module, WasiOptions options)
    {
        var wasi = WasiHost.IsWasiModule(module);
        var ferry = FerryAbiHost.IsFerryAbiModule(module);
        if (wasi && ferry) throw new WasiConfigurationException($"a module may import {WasiAbi.ModuleName} or {FerryAbiHost.ModuleName}, not both");
        if (wasi) return WasiEnvironment.Create(options);
        if (!ferry) return new EmptyEnvironment();
        if (options.Preopens.Count > 0 || options.Env.Count > 0)
        {
            throw new WasiConfigurationException($"the module uses the {FerryAbiHost.ModuleName} ABI, which has no directories or environment variables");
        }
        return FerryAbiEnvironment.Create(new FerryAbiOptions { Args = options.Args, Stdout = StreamOf(options.Stdout), Stderr = StreamOf(options.Stderr) });
    }

    /// <summary>The environment captured in <paramref name="state"/> (empty: none), continued with <paramref name="options"/>' stdio and preopens.</summary>
    public static IGuestEnvironment Restore(ReadOnlySpan<byte> state, WasiOptions options)
    {
        if (state.IsEmpty) return new EmptyEnvironment();
        if (FerryAbiState.IsEncoded(state))
        {
            return FerryAbiEnvironment.Restore(state, new FerryAbiOptions { Stdout = StreamOf(options.Stdout), Stderr = StreamOf(options.Stderr) });
        }
        return WasiEnvironment.Restore(state, options);
    }

    /// <summary>A stream-backed stdio as a stream; the process's own descriptors as null (the ABI's default).</summary>
    private static Stream? StreamOf(WasiStdio stdio) =>
        stdio.Stream ?? (stdio.HostFd is 1 or 2 ? null : new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(stdio.HostFd, false), FileAccess.Write, 0));
}
