using System.Reflection;
using System.Reflection.Emit;

namespace Ferry.Wasm.Compilation;

/// <summary>
/// Compiles the "resume" versions of functions on demand: the same code as the normal compile plus a dispatcher
/// that rebuilds a frozen frame. Only functions that appear in a snapshot's frames need one, so this runs at
/// restore time, for a handful of functions. Results are cached per compiled module.
/// </summary>
internal static class ResumeCompiler
{
    private static int counter;

    /// <returns>How many resume versions had to be compiled (0: all were cached).</returns>
    public static int EnsureCompiled(CompiledModule compiled, IEnumerable<(int Function, int SafePoint)> frames)
    {
        lock (compiled.ResumeLock)
        {
            var entries = compiled.ResumeEntries;
            var needed = frames.Where(f => f.Function >= compiled.Module.ImportedFunctionCount && f.Function < compiled.Module.FunctionCount && !entries.ContainsKey(f))
                .Distinct().Order().ToList();
            if (needed.Count == 0) return 0;
            foreach (var (f, sp) in needed)
            {
                if (!compiled.SafePoints.Contains(f, sp)) throw new Runtime.FrameMismatchException($"function {f} has no safe point {sp}");
            }

            var n = Interlocked.Increment(ref counter);
            var name = new AssemblyName($"Ferry.Wasm.Resume{n}");
            var access = compiled.Options.Collectible ? AssemblyBuilderAccess.RunAndCollect : AssemblyBuilderAccess.Run;
            var dynModule = AssemblyBuilder.DefineDynamicAssembly(name, access).DefineDynamicModule(name.Name!);
            var tb = dynModule.DefineType("Resume", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Abstract);
            var layout = new ModuleLayout
            {
                Module = compiled.Layout.Module,
                InstanceType = compiled.Layout.InstanceType,
                Methods = compiled.Layout.Methods,
                GlobalFields = compiled.Layout.GlobalFields,
                GlobalIsCell = compiled.Layout.GlobalIsCell,
                ImportFields = compiled.Layout.ImportFields,
                Options = compiled.Layout.Options,
                MayGrowMemory = compiled.Layout.MayGrowMemory,
                CanUnwind = compiled.Layout.CanUnwind,
                SafePoints = compiled.Layout.SafePoints,
                Shapes = new SaveShapes(tb, compiled.Layout.InstanceType),
                Tokens = new MemberTokens(dynModule),
            };
            var builders = new Dictionary<(int, int), MethodBuilder>();
            foreach (var (f, sp) in needed)
            {
                var t = compiled.Module.FunctionType(f);
                var mb = tb.DefineMethod($"{ModuleCompiler.MethodName(compiled.Module, f)}#resume{sp}", MethodAttributes.Public | MethodAttributes.Static,
                    ClrTypes.Return(t), ClrTypes.Parameters(t, layout.InstanceType));
                builders[(f, sp)] = mb;
                new FunctionCompiler(layout, f, mb.GetILGenerator(), resumeAt: sp).Compile();
            }
            var created = tb.CreateType();
            foreach (var (key, mb) in builders)
            {
                var handle = created.GetMethod(mb.Name, BindingFlags.Public | BindingFlags.Static)!.MethodHandle;
                // JIT now rather than at the first call: the caller decides when this cost is paid (a migration
                // destination pays it before it reports ready, inside the measured downtime, not after it).
                System.Runtime.CompilerServices.RuntimeHelpers.PrepareMethod(handle);
                entries[key] = handle.GetFunctionPointer();
            }
            return needed.Count;
        }
    }
}
