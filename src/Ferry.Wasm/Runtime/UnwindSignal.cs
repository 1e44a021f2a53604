namespace Ferry.Wasm.Runtime;

/// <summary>
/// Thrown by a compiled function right after it saved its frame at a safe point, and caught by the same function,
/// which then returns to its caller (whose call site notices the unwinding and does the same). It never leaves a
/// compiled function. Why an exception for what is only a return: the JIT treats blocks that end in a throw as
/// never run, so the unwind paths get no weight in the hot code's register allocation and layout; a plain return
/// there is guessed to be taken one time in ten and measurably slowed loops (bfs 1.4x, see docs/benchmarks.md).
/// </summary>
public sealed class UnwindSignal : Exception
{
    public UnwindSignal()
        : base("a compiled WebAssembly frame is unwinding for a freeze")
    {
    }
}
