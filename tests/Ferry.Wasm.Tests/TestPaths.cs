using System.Diagnostics;

namespace Ferry.Wasm.Tests;

/// <summary>Locations the tests need: the repository root and the shared spec test suite beside it.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string SpecSuite => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "wasm-testsuite"));

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ferry.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (Ferry.sln) above " + AppContext.BaseDirectory);
    }

    /// <summary>A fresh temporary directory, removed when disposed.</summary>
    public sealed class TempDir : IDisposable
    {
        public TempDir() => Directory.CreateDirectory(Path);

        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ferry-test-" + Guid.NewGuid().ToString("N"));

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>Builds test modules from WebAssembly text with Debian's wat2wasm (installed by ./setup).</summary>
public static class Wat
{
    public static byte[] ToWasm(string wat, params string[] flags)
    {
        using var dir = new TestPaths.TempDir();
        var input = Path.Combine(dir.Path, "m.wat");
        var output = Path.Combine(dir.Path, "m.wasm");
        File.WriteAllText(input, wat);
        var psi = new ProcessStartInfo("wat2wasm") { RedirectStandardError = true };
        psi.ArgumentList.Add("--debug-names");
        foreach (var f in flags) psi.ArgumentList.Add(f);
        psi.ArgumentList.Add(input);
        psi.ArgumentList.Add("-o");
        psi.ArgumentList.Add(output);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException("wat2wasm failed: " + err);
        return File.ReadAllBytes(output);
    }
}
