using System.Numerics;
using System.Runtime.CompilerServices;

namespace Ferry.CpuFeatures.Features;

/// <summary>
/// A set of <see cref="CpuFeature"/> values as a 128-bit mask: unions in the decode loop are two ORs and
/// never allocate. (No static constructor on purpose: it would put a class-init check on every operator call;
/// the 128-value limit is asserted where the names are built and by a test.)
/// </summary>
public readonly struct FeatureSet : IEquatable<FeatureSet>
{
    private readonly ulong _low;
    private readonly ulong _high;

    private FeatureSet(ulong low, ulong high)
    {
        _low = low;
        _high = high;
    }

    public static FeatureSet Empty => default;

    public static FeatureSet Of(CpuFeature feature)
    {
        int bit = (int)feature;
        return bit < 64 ? new FeatureSet(1UL << bit, 0) : new FeatureSet(0, 1UL << (bit - 64));
    }

    public static FeatureSet Of(params ReadOnlySpan<CpuFeature> features)
    {
        var set = Empty;
        foreach (var feature in features)
        {
            set |= Of(feature);
        }
        return set;
    }

    public bool IsEmpty => (_low | _high) == 0;

    public int Count => BitOperations.PopCount(_low) + BitOperations.PopCount(_high);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(CpuFeature feature) => !(this & Of(feature)).IsEmpty;

    public bool IsSubsetOf(FeatureSet other) => (this & ~other).IsEmpty;

    public bool Overlaps(FeatureSet other) => !(this & other).IsEmpty;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FeatureSet operator |(FeatureSet a, FeatureSet b) => new(a._low | b._low, a._high | b._high);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FeatureSet operator &(FeatureSet a, FeatureSet b) => new(a._low & b._low, a._high & b._high);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FeatureSet operator ~(FeatureSet a) => new(~a._low, ~a._high);

    /// <summary>The features of <paramref name="a"/> not in <paramref name="b"/>.</summary>
    public static FeatureSet operator -(FeatureSet a, FeatureSet b) => a & ~b;

    public static bool operator ==(FeatureSet a, FeatureSet b) => a.Equals(b);

    public static bool operator !=(FeatureSet a, FeatureSet b) => !a.Equals(b);

    public bool Equals(FeatureSet other) => _low == other._low && _high == other._high;

    public override bool Equals(object? obj) => obj is FeatureSet other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_low, _high);

    /// <summary>The members in ascending <see cref="CpuFeature"/> order (which groups them by ISA level).</summary>
    public IEnumerable<CpuFeature> Members()
    {
        for (int bit = 1; bit < (int)CpuFeature.Count; bit++)
        {
            if (Contains((CpuFeature)bit))
            {
                yield return (CpuFeature)bit;
            }
        }
    }

    /// <summary>The lowest member, or <see cref="CpuFeature.None"/>; used to walk a set without allocating.</summary>
    public CpuFeature First()
    {
        if (_low != 0)
        {
            return (CpuFeature)BitOperations.TrailingZeroCount(_low);
        }
        return _high != 0 ? (CpuFeature)(64 + BitOperations.TrailingZeroCount(_high)) : CpuFeature.None;
    }

    public IReadOnlyList<string> Names() => Members().Select(CpuFeatureInfo.Name).ToList();

    public override string ToString() => string.Join(' ', Names());
}
