using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Compiles functions' resume versions: the same code as the normal compile plus a dispatcher that rebuilds a frame
/// frozen at any of the function's safe points (see <see cref="FunctionCompiler"/>). Separate methods, so the ordinary
/// code carries none of it; compiled when needed (a local restore, for the frozen functions) or ahead of time (a
/// migration destination, before the source freezes: <see cref="WarmUp"/>). Results are cached per compiled module.
/// </summary>
internal static class ResumeCompiler
{
    private static int counter;

    /// <summary>How many functions one dynamic assembly holds during a warm-up (a cancellation or the budget is checked between them).</summary>
    private const int WarmUpBatch = 16;

    /// <summary>
    /// Ordinary code larger than this (IL bytes) gets resume versions for one safe point at a time, compiled when a
    /// frame names it: a version for every safe point adds about 30 % of IL, and past 60,000 bytes RyuJIT stops
    /// optimising a method (MinOpts), which the frame would then run in until it returns — for an interpreter's loop
    /// (Lua's luaV_execute: 52 KB, 66 KB with every safe point) the rest of the program.
    /// </summary>
    internal const int LargeFunctionIl = 44_000;

    /// <summary>
    /// Compiles and JIT-compiles resume versions covering the given (function, safe point) pairs, where not compiled
    /// yet: one version for all of a function's safe points (safe point -1), or, for a function larger than
    /// <see cref="LargeFunctionIl"/>, one for that safe point (a request with safe point -1, i.e. "any", is skipped
    /// for such a function). Imports, out-of-range indices and functions without safe points (they can never be
    /// frozen) are skipped.
    /// </summary>
    /// <returns>How many resume versions this call compiled (0: all were ready).</returns>
    public static int EnsureCompiled(CompiledModule compiled, IEnumerable<(int Function, int SafePoint)> frames)
    {
        lock (compiled.ResumeLock)
        {
            var module = compiled.Module;
            var needed = Missing(compiled, frames);
            if (needed.Count == 0) return 0;

            var n = Interlocked.Increment(ref counter);
            var name = new AssemblyName($"Ferry.Wasm.Resume{n}");
            var access = compiled.Options.Collectible ? AssemblyBuilderAccess.RunAndCollect : AssemblyBuilderAccess.Run;
            var dynModule = AssemblyBuilder.DefineDynamicAssembly(name, access).DefineDynamicModule(name.Name!);
            var tb = dynModule.DefineType("Resume", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Abstract);
            var source = compiled.Layout;
            var layout = new ModuleLayout
            {
                Module = source.Module,
                InstanceType = source.InstanceType,
                Methods = source.Methods,
                GlobalFields = source.GlobalFields,
                GlobalIsCell = source.GlobalIsCell,
                ImportFields = source.ImportFields,
                Options = source.Options,
                MayGrowMemory = source.MayGrowMemory,
                CanUnwind = source.CanUnwind,
                // Same body, same numbering and layouts: the resume version's safe points are the ordinary code's.
                SafePoints = source.SafePoints,
                Shapes = new SaveShapes(tb, source.InstanceType),
                Tokens = new MemberTokens(dynModule),
            };
            var builders = new Dictionary<(int, int), MethodBuilder>();
            foreach (var (f, sp) in needed)
            {
                var t = module.FunctionType(f);
                var suffix = sp < 0 ? "#resume" : $"#resume{sp}";
                var mb = tb.DefineMethod($"{ModuleCompiler.MethodName(module, f)}{suffix}", MethodAttributes.Public | MethodAttributes.Static,
                    ClrTypes.Return(t), ClrTypes.Parameters(t, layout.InstanceType));
                // Tiered like ordinary code (tier 0, then on-stack replacement for hot loops). AggressiveOptimization
                // here was tried (2026-12-06): it removed the guest thread's OSR stalls after a resume, but the
                // full-optimisation compile of a large resume version kept throttled guests frozen for tens of
                // milliseconds (kvstore pre-copy at 1 GiB: 58.7 ms downtime against 7.5 without; docs/benchmarks.md).
                builders[(f, sp)] = mb;
                new FunctionCompiler(layout, f, mb.GetILGenerator(), resumeAt: sp).Compile();
            }
            var created = tb.CreateType();
            foreach (var (key, mb) in builders)
            {
                var handle = created.GetMethod(mb.Name, BindingFlags.Public | BindingFlags.Static)!.MethodHandle;
                // JIT now rather than at the first call: the caller decides when this cost is paid (a migration
                // destination pays it before the freeze or before it reports ready, not after the guest started).
                System.Runtime.CompilerServices.RuntimeHelpers.PrepareMethod(handle);
                compiled.ResumeEntries[key] = handle.GetFunctionPointer();
            }
            return needed.Count;
        }
    }

    /// <summary>True when every resume version <see cref="EnsureCompiled"/> would compile for these pairs exists.</summary>
    public static bool IsCompiled(CompiledModule compiled, IEnumerable<(int Function, int SafePoint)> frames)
    {
        lock (compiled.ResumeLock) return Missing(compiled, frames).Count == 0;
    }

    /// <summary>The resume versions (function, safe point or -1 for all) still to compile for these pairs; under <c>ResumeLock</c>.</summary>
    private static SortedSet<(int Function, int SafePoint)> Missing(CompiledModule compiled, IEnumerable<(int Function, int SafePoint)> frames)
    {
        var module = compiled.Module;
        var needed = new SortedSet<(int Function, int SafePoint)>();
        foreach (var (f, sp) in frames)
        {
            if (f < module.ImportedFunctionCount || f >= module.FunctionCount || !compiled.Layout.CanUnwind[f] || !compiled.Options.SafePoints) continue;
            if (compiled.ResumeEntries.ContainsKey((f, -1))) continue;
            var key = (f, -1);
            if (compiled.IlSize(f) > LargeFunctionIl)
            {
                if (sp < 0) continue; // no version for every safe point; one is compiled when a frame names it
                key = (f, sp);
            }
            if (!compiled.ResumeEntries.ContainsKey(key)) needed.Add(key);
        }
        return needed;
    }

    /// <summary>
    /// Readies a module for resuming frames that are not known yet (a migration destination before the freeze):
    /// resume versions of every function that can be frozen (but those above <see cref="LargeFunctionIl"/>), then the
    /// ordinary code of every function, largest body first, until <paramref name="budget"/> is spent; what is left
    /// compiles when needed. Largest first because the JIT's time grows with the body, and a program's big functions
    /// (main, an interpreter's loop) are the ones most likely on its stack.
    /// </summary>
    /// <returns>Resume versions and ordinary functions compiled by this call.</returns>
    public static (int ResumeVersions, int Functions) WarmUp(CompiledModule compiled, TimeSpan budget, CancellationToken cancellationToken = default)
    {
        if (budget <= TimeSpan.Zero) return (0, 0);
        var order = compiled.LargestFirst();
        var clock = Stopwatch.StartNew();
        var resumeVersions = WarmUpResume(compiled, order, clock, budget, cancellationToken);
        var functions = 0;
        foreach (var f in order)
        {
            if (clock.Elapsed >= budget) break;
            functions += compiled.Prepare([f], cancellationToken);
        }
        return (resumeVersions, functions);
    }

    /// <summary>
    /// Only the resume versions of <see cref="WarmUp"/>, within <paramref name="budget"/>: for a running program that
    /// is about to be frozen and resumed often (a migration source under auto-converge), whose ordinary code is
    /// compiled already.
    /// </summary>
    /// <returns>Resume versions compiled by this call.</returns>
    public static int WarmUpResume(CompiledModule compiled, TimeSpan budget, CancellationToken cancellationToken = default) =>
        budget <= TimeSpan.Zero ? 0 : WarmUpResume(compiled, compiled.LargestFirst(), Stopwatch.StartNew(), budget, cancellationToken);

    private static int WarmUpResume(CompiledModule compiled, int[] order, Stopwatch clock, TimeSpan budget, CancellationToken cancellationToken)
    {
        var resumeVersions = 0;
        for (var i = 0; i < order.Length && clock.Elapsed < budget; i += WarmUpBatch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = new (int, int)[Math.Min(WarmUpBatch, order.Length - i)];
            for (var k = 0; k < batch.Length; k++) batch[k] = (order[i + k], -1);
            resumeVersions += EnsureCompiled(compiled, batch);
        }
        return resumeVersions;
    }
}
