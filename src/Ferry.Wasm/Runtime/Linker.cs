namespace Ferry.Wasm.Runtime;

/// <summary>Supplies the values a module imports.</summary>
public interface IImportResolver
{
    /// <summary>
    /// The external value for an import, or null if unknown: a <see cref="FuncRef"/> or <see cref="HostFunction"/>,
    /// a <see cref="Table"/>, a <see cref="LinearMemory"/> or a <see cref="GlobalCell"/>.
    /// </summary>
    object? Resolve(string module, string name);
}

/// <summary>A name → value map of imports: host definitions and the exports of registered instances.</summary>
public sealed class Linker : IImportResolver
{
    private readonly Dictionary<(string, string), object> items = [];

    public Linker Define(string module, string name, object value)
    {
        items[(module, name)] = value;
        return this;
    }

    public Linker DefineFunction(string module, string name, FuncType type, Delegate implementation)
    {
        HostStubs.CheckSignature(type, implementation);
        return Define(module, name, new HostFunction(type, implementation, $"{module}.{name}"));
    }

    /// <summary>Makes every export of <paramref name="instance"/> importable under module name <paramref name="module"/>.</summary>
    public Linker Register(string module, Instance instance)
    {
        foreach (var (name, value) in instance.Exports) items[(module, name)] = value;
        return this;
    }

    public object? Resolve(string module, string name) => items.GetValueOrDefault((module, name));
}
