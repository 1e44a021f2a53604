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

    public static void EnsureCompiled(CompiledModule compiled, IEnumerable<int> functions)
    {
        lock (compiled.ResumeLock)
        {
            var entries = compiled.ResumeEntries;
            var needed = functions.Where(f => f >= compiled.Module.ImportedFunctionCount && f < compiled.Module.FunctionCount && entries[f] == 0)
                .Distinct().Order().ToList();
            if (needed.Count == 0) return;

            var layout = compiled.Layout;
            var n = Interlocked.Increment(ref counter);
            var name = new AssemblyName($"Ferry.Wasm.Resume{n}");
            var access = layout.Options.Collectible ? AssemblyBuilderAccess.RunAndCollect : AssemblyBuilderAccess.Run;
            var tb = AssemblyBuilder.DefineDynamicAssembly(name, access).DefineDynamicModule(name.Name!)
                .DefineType("Resume", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Abstract);
            var builders = new Dictionary<int, MethodBuilder>();
            foreach (var f in needed)
            {
                var t = compiled.Module.FunctionType(f);
                var mb = tb.DefineMethod(ModuleCompiler.MethodName(compiled.Module, f), MethodAttributes.Public | MethodAttributes.Static,
                    ClrTypes.Return(t), ClrTypes.Parameters(t, layout.InstanceType));
                builders[f] = mb;
                new FunctionCompiler(layout, f, mb.GetILGenerator(), resume: true).Compile();
            }
            var created = tb.CreateType();
            foreach (var (f, mb) in builders)
            {
                entries[f] = created.GetMethod(mb.Name, BindingFlags.Public | BindingFlags.Static)!.MethodHandle.GetFunctionPointer();
            }
        }
    }
}
