using System.Runtime.CompilerServices;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// An open-addressing map from code address to a small int, cleared in O(1) by bumping a generation stamp:
/// the descent reuses one per thread for every function, small or huge.
/// </summary>
internal sealed class AddressMap
{
    private ulong[] _keys = new ulong[256];
    private int[] _values = new int[256];
    private uint[] _stamps = new uint[256];
    private uint _generation = 1;
    private int _count;

    public int Count => _count;

    public void Clear()
    {
        _count = 0;
        if (++_generation == 0)
        {
            Array.Clear(_stamps);
            _generation = 1;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(ulong key, out int value)
    {
        int mask = _keys.Length - 1;
        for (int i = Hash(key) & mask; ; i = (i + 1) & mask)
        {
            if (_stamps[i] != _generation)
            {
                value = -1;
                return false;
            }
            if (_keys[i] == key)
            {
                value = _values[i];
                return true;
            }
        }
    }

    /// <summary>Adds or overwrites.</summary>
    public void Set(ulong key, int value)
    {
        if ((_count + 1) * 2 > _keys.Length)
        {
            Grow();
        }
        int mask = _keys.Length - 1;
        for (int i = Hash(key) & mask; ; i = (i + 1) & mask)
        {
            if (_stamps[i] != _generation)
            {
                _stamps[i] = _generation;
                _keys[i] = key;
                _values[i] = value;
                _count++;
                return;
            }
            if (_keys[i] == key)
            {
                _values[i] = value;
                return;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> 40);

    private void Grow()
    {
        var keys = _keys;
        var values = _values;
        var stamps = _stamps;
        uint generation = _generation;
        _keys = new ulong[keys.Length * 2];
        _values = new int[keys.Length * 2];
        _stamps = new uint[keys.Length * 2];
        _generation = 1;
        _count = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            if (stamps[i] == generation)
            {
                Set(keys[i], values[i]);
            }
        }
    }
}
