namespace Ferry.Wasm;

/// <summary>Base of every error the engine reports about a module or its execution.</summary>
public abstract class WasmException : Exception
{
    protected WasmException(string message) : base(message) { }
    protected WasmException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// The bytes are not a well-formed module (binary format violation). Names the section, the byte offset
/// in the file, and the reason; <see cref="Reason"/> is the bare reason, matching the spec tests' texts where they exist.
/// </summary>
public sealed class MalformedModuleException : WasmException
{
    public MalformedModuleException(string reason, long offset, string section)
        : base($"malformed module: {reason} (section {section}, offset 0x{offset:x})")
    {
        Reason = reason;
        Offset = offset;
        Section = section;
    }

    public string Reason { get; }
    public long Offset { get; }
    public string Section { get; }
}

/// <summary>The module is well-formed but fails validation (type errors, bad indices, limits).</summary>
public sealed class InvalidModuleException : WasmException
{
    public InvalidModuleException(string reason, long offset, string where)
        : base($"invalid module: {reason} ({where}, offset 0x{offset:x})")
    {
        Reason = reason;
        Offset = offset;
        Where = where;
    }

    public string Reason { get; }
    public long Offset { get; }
    public string Where { get; }
}

/// <summary>Instantiation failed because an import could not be satisfied.</summary>
public sealed class LinkException : WasmException
{
    public LinkException(string reason) : base($"link error: {reason}") => Reason = reason;
    public string Reason { get; }
}

/// <summary>A module failed while being set up, and cannot be used.</summary>
public sealed class InstantiationException : WasmException
{
    public InstantiationException(string message) : base(message) { }
}
