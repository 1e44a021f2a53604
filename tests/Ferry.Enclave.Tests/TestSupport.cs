using System.Diagnostics;
using Ferry.Enclave.Tracking;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Enclave.Tests;

/// <summary>
/// The kernel features these tests need. CI runs as root on Linux 6.18, where they exist; anywhere they do not,
/// the tests fail with the reason instead of passing silently.
/// </summary>
public static class Kernel
{
    public static void RequireDirtyTracking()
    {
        var s = UserfaultfdSupport.Current;
        Assert.True(s.CanTrackDirtyPages, "kernel dirty tracking is required by this test but unavailable: " + s.DirtyTrackingUnavailableReason);
    }

    public static void RequireMissingPages()
    {
        var s = UserfaultfdSupport.Current;
        Assert.True(s.CanServeMissingPages, "userfaultfd missing-page serving is required by this test but unavailable: " + s.MissingPagesUnavailableReason);
    }
}

/// <summary>Builds modules from WebAssembly text with Debian's wat2wasm (installed by ./setup), like Ferry.Wasm.Tests.</summary>
public static class Wat
{
    public static byte[] ToWasm(string wat)
    {
        var dir = Path.Combine(Path.GetTempPath(), "ferry-enclave-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var input = Path.Combine(dir, "m.wat");
            var output = Path.Combine(dir, "m.wasm");
            File.WriteAllText(input, wat);
            var psi = new ProcessStartInfo("wat2wasm") { RedirectStandardError = true };
            psi.ArgumentList.Add(input);
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add(output);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException("wat2wasm failed: " + err);
            return File.ReadAllBytes(output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The module of <paramref name="wat"/>, decoded and validated.</summary>
    public static Ferry.Wasm.Module Load(string wat)
    {
        var module = ModuleDecoder.Decode(ToWasm(wat));
        ModuleValidator.Validate(module);
        return module;
    }

    public static Instance Instantiate(string wat, CompileOptions? options = null, InstanceOptions? instanceOptions = null) =>
        Instance.Instantiate(ModuleCompiler.Compile(Load(wat), options), null, instanceOptions);

    /// <summary>
    /// A module that writes its memory in the ways compiled code can: byte and 8-byte stores (which may straddle a
    /// page boundary), memory.fill, memory.copy, memory.grow, and a pseudo-random scatter of stores.
    /// </summary>
    public const string Writer = """
        (module
          (memory (export "m") 16 256)
          (data (i32.const 100) "initial data")
          (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
          (func (export "store64") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
          (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
          (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
          (func (export "copy") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
          (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
          (func (export "size") (result i32) (memory.size))
          ;; n stores of 8 bytes at pseudo-random addresses below the current size (a linear congruential generator).
          (func (export "scatter") (param $seed i32) (param $n i32)
            (local $limit i32)
            (local.set $limit (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 8)))
            (block $done
              (loop $next
                (br_if $done (i32.eqz (local.get $n)))
                (local.set $seed (i32.add (i32.mul (local.get $seed) (i32.const 1103515245)) (i32.const 12345)))
                (i64.store (i32.rem_u (i32.shr_u (local.get $seed) (i32.const 4)) (local.get $limit)) (i64.extend_i32_u (local.get $seed)))
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                (br $next)))))
        """;
}

/// <summary>Runs this test assembly as a child process (see Program.cs) with a deadline, for scenarios that could hang.</summary>
public static class ChildProcess
{
    public static (int ExitCode, string Output) Run(TimeSpan timeout, params string[] args)
    {
        var assembly = typeof(ChildProcess).Assembly.Location;
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // Under `dotnet test` the current process is the test host run by `dotnet`; run the assembly the same way.
        if (!Path.GetFileNameWithoutExtension(psi.FileName).Equals("dotnet", StringComparison.Ordinal)) psi.FileName = "dotnet";
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(assembly);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return (-1, $"timed out after {timeout.TotalSeconds:F0} s (deadlock?)\n{stdout.Result}{stderr.Result}");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
