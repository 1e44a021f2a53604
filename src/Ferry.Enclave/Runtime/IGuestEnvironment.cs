using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Runtime;

/// <summary>
/// What a guest program sees of the host besides its own module: its imports (WASI, or nothing) and the
/// state of them that must travel with the program when it is checkpointed or migrated.
/// </summary>
public interface IGuestEnvironment : IDisposable
{
    /// <summary>Registers the imports the environment provides.</summary>
    void Define(Linker linker);

    /// <summary>Attaches the instantiated program.</summary>
    void Bind(Instance instance);

    /// <summary>The environment's state in a portable, versioned encoding (for snapshots and migration).</summary>
    byte[] CaptureState();

    /// <summary>When <paramref name="e"/> is the program ending itself (e.g. WASI proc_exit), its exit code.</summary>
    int? ExitCodeOf(Exception e);

    /// <summary>Writes out buffered output (before a freeze hands the program to another process).</summary>
    void Flush();
}

/// <summary>A program with no imports: nothing to define, nothing to carry.</summary>
public sealed class EmptyEnvironment : IGuestEnvironment
{
    public void Define(Linker linker)
    {
    }

    public void Bind(Instance instance)
    {
    }

    public byte[] CaptureState() => [];

    public int? ExitCodeOf(Exception e) => null;

    public void Flush()
    {
    }

    public void Dispose()
    {
    }
}
