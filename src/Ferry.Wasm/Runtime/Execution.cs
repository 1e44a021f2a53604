using Ferry.Wasm.Compilation;

namespace Ferry.Wasm.Runtime;

/// <summary>How a call into an instance ended: it returned, or it was frozen at a safe point.</summary>
public sealed class CallOutcome
{
    private CallOutcome(WasmValue[]? results, IReadOnlyList<FrameRecord>? frames)
    {
        Results = results;
        Frames = frames;
    }

    public WasmValue[]? Results { get; }
    /// <summary>The frozen call stack, innermost frame first; null if the call completed.</summary>
    public IReadOnlyList<FrameRecord>? Frames { get; }
    public bool IsFrozen => Frames is not null;

    internal static CallOutcome Completed(WasmValue[] results) => new(results, null);
    /// <summary>Frozen at <paramref name="frames"/> (innermost first), e.g. still frozen because a freeze came before the resume ran.</summary>
    public static CallOutcome Frozen(IReadOnlyList<FrameRecord> frames) => new(null, frames);
}

/// <summary>
/// Runs calls that can be frozen and resumed. A freeze (<see cref="InstanceBase.RequestFreeze"/>, from any thread)
/// stops the code at its next safe point and unwinds the WebAssembly stack into portable frame records; resuming
/// rebuilds those frames — in this process or another, on any machine — and continues exactly where it stopped.
/// </summary>
public static class Execution
{
    /// <summary>Calls <paramref name="function"/>; returns its results, or the frozen frames if a freeze stopped it.</summary>
    public static CallOutcome Call(Instance instance, FuncRef function, params WasmValue[] args)
    {
        var state = instance.State;
        state.Frames.Clear();
        var results = Instance.Invoke(function, args);
        return Finish(state, results);
    }

    /// <summary>
    /// Checks <paramref name="frames"/> against the module's code and compiles (and JIT-compiles) the resume versions
    /// of their functions, so that a resume right after starts running guest code at once. Optional:
    /// <see cref="Resume"/> does it itself; a migration destination calls it before it declares itself ready, so the
    /// work counts as downtime where it is (normally none is left: see <see cref="WarmUp"/>).
    /// </summary>
    /// <returns>How many resume versions had to be compiled (0: all were ready, e.g. from <see cref="WarmUp"/> or <see cref="Precompile"/>).</returns>
    /// <exception cref="FrameMismatchException">A frame does not fit the module's code.</exception>
    public static int PrepareResume(Instance instance, IReadOnlyList<FrameRecord> frames)
    {
        if (frames.Count == 0) throw new ArgumentException("no frames to resume", nameof(frames));
        var compiled = instance.Compiled;
        if (!compiled.Options.SafePoints) throw new FrameMismatchException("the module was compiled without safe points; it cannot resume frames");
        var module = instance.Module;
        foreach (var f in frames)
        {
            if (f.FunctionIndex < module.ImportedFunctionCount || f.FunctionIndex >= module.FunctionCount)
            {
                throw new FrameMismatchException($"frame names function {f.FunctionIndex}, which this module does not define");
            }
            CheckLayout(f, compiled.SafePoints.Get(f.FunctionIndex, f.SafePoint));
        }
        return ResumeCompiler.EnsureCompiled(compiled, frames.Select(f => (f.FunctionIndex, f.SafePoint)));
    }

    /// <summary>
    /// True when the resume code for <paramref name="frames"/> is compiled, so <see cref="Resume"/> runs guest code at
    /// once (false: <see cref="PrepareResume"/> still has work to do). Does not check the frames' layouts.
    /// </summary>
    public static bool IsResumeReady(Instance instance, IReadOnlyList<FrameRecord> frames) =>
        ResumeCompiler.IsCompiled(instance.Compiled, frames.Select(f => (f.FunctionIndex, f.SafePoint)));

    /// <summary>
    /// A frame must record exactly the safe point's live locals (in order) and operand stack: the rebuilder trusts
    /// that shape (it restores a missing local as zero), so a damaged or foreign frame is refused here, up front.
    /// </summary>
    private static void CheckLayout(FrameRecord f, SafePointLayout layout)
    {
        var ok = f.Locals.Length == layout.LiveLocals.Length && f.Stack.Length == layout.Stack.Length;
        for (var i = 0; ok && i < f.Locals.Length; i++) ok = f.Locals[i].Index == layout.LiveLocals[i];
        for (var i = 0; ok && i < f.Stack.Length; i++) ok = f.Stack[i].Type == layout.Stack[i];
        if (!ok) throw new FrameMismatchException($"frame of function {f.FunctionIndex} at safe point {f.SafePoint} does not match the code's layout");
    }

    /// <summary>
    /// Compiles the resume versions for (function, safe point) pairs expected to be resumed soon — a head start, e.g.
    /// on a migration destination before the frames themselves arrive. Pairs this module does not have (no such
    /// function or safe point; the safe-point table knows only defined functions) are skipped.
    /// </summary>
    public static void Precompile(CompiledModule compiled, IReadOnlyList<(int Function, int SafePoint)> frames) =>
        ResumeCompiler.EnsureCompiled(compiled, frames.Where(f => compiled.SafePoints.Contains(f.Function, f.SafePoint)));

    /// <summary>
    /// Readies <paramref name="compiled"/> for frames not known yet, within <paramref name="budget"/>: the resume
    /// versions of every function that can be frozen, then the ordinary code, largest functions first (a migration
    /// destination before it lets the source freeze; what the budget leaves out is compiled when needed).
    /// </summary>
    /// <returns>Resume versions and ordinary functions compiled by this call.</returns>
    public static (int ResumeVersions, int Functions) WarmUp(CompiledModule compiled, TimeSpan budget, CancellationToken cancellationToken = default) =>
        ResumeCompiler.WarmUp(compiled, budget, cancellationToken);

    /// <summary>
    /// The resume versions of every function that can be frozen, within <paramref name="budget"/>, largest first: for
    /// a running program that will be frozen and resumed (auto-converge's cycles), so that a resume does not wait for
    /// the JIT. Returns how many this call compiled.
    /// </summary>
    public static int WarmUpResume(CompiledModule compiled, TimeSpan budget, CancellationToken cancellationToken = default) =>
        ResumeCompiler.WarmUpResume(compiled, budget, cancellationToken);

    /// <summary>Continues a frozen call from <paramref name="frames"/> (innermost first) in <paramref name="instance"/>.</summary>
    public static CallOutcome Resume(Instance instance, IReadOnlyList<FrameRecord> frames)
    {
        PrepareResume(instance, frames);
        var compiled = instance.Compiled;
        var module = instance.Module;
        var state = instance.State;
        // Leftovers of the unwind that produced these frames go; a freeze requested meanwhile stays pending (it
        // takes effect at the first safe point after the frames are rebuilt).
        if (state.Interrupt == InstanceBase.Unwinding) state.ClearInterrupt();
        state.Frames.StartRewind(frames);
        var outermost = frames[^1].FunctionIndex;
        var type = module.FunctionType(outermost);
        var entry = new FuncRef(compiled.ResumeEntry(outermost, frames[^1].SafePoint), state, type, instance, outermost);
        // The outermost frame's arguments are restored from its record; these placeholders are never read.
        var placeholders = type.Parameters.Select(WasmValue.Default).ToArray();
        WasmValue[] results;
        try
        {
            results = Instance.Invoke(entry, placeholders);
        }
        catch
        {
            state.Frames.Clear();
            throw;
        }
        return Finish(state, results);
    }

    private static CallOutcome Finish(InstanceBase state, WasmValue[] results)
    {
        if (state.Interrupt == InstanceBase.Unwinding)
        {
            var frames = state.Frames.Captured.ToArray();
            state.Frames.Clear();
            state.ClearInterrupt();
            return CallOutcome.Frozen(frames);
        }
        state.ClearInterrupt();
        return CallOutcome.Completed(results);
    }
}
