namespace Ferry.Wasm.Runtime;

/// <summary>
/// A table of references. <see cref="Elements"/> always has exactly the table's current size, so compiled
/// code bounds-checks against the array length.
/// </summary>
public sealed class Table
{
    /// <summary>Largest size any table may reach (keeps growth bounded by what an array can hold).</summary>
    public const uint HardMax = 10_000_000;

    public object?[] Elements;

    public Table(ValueType elementType, uint min, uint? max)
    {
        ElementType = elementType;
        Max = max;
        if (min > HardMax) throw new TrapException(TrapKind.HostError, $"table of {min} elements exceeds Ferry's limit of {HardMax}");
        Elements = new object?[min];
    }

    public ValueType ElementType { get; }
    public uint? Max { get; }
    public uint Size => (uint)Elements.Length;

    /// <summary>table.grow: returns the old size, or -1.</summary>
    public int Grow(uint delta, object? init)
    {
        var old = Size;
        var limit = Math.Min(Max ?? uint.MaxValue, HardMax);
        if (delta > limit - old) return -1;
        if (delta == 0) return (int)old;
        var next = new object?[old + delta];
        Array.Copy(Elements, next, old);
        if (init is not null) Array.Fill(next, init, (int)old, (int)delta);
        Elements = next;
        return (int)old;
    }
}
