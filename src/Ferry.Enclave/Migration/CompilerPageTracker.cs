using System.Numerics;
using System.Runtime.Intrinsics;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Migration;

/// <summary>
/// Compiler-based write tracking: the guest was compiled with <c>DirtyTracking</c>, so every store marks its
/// page in the instance's dirty map; collecting scans and clears the map (vectorised, allocation-free).
/// </summary>
public sealed unsafe class CompilerPageTracker : IPageTracker
{
    private readonly InstanceBase state;

    public CompilerPageTracker(InstanceBase state)
    {
        if (state.DirtyMap is null) throw new InvalidOperationException("the guest was not compiled with write tracking");
        this.state = state;
    }

    public string Method => "compiler";

    private long CommittedPages => (long)((state.Memory0?.Size ?? 0) >> PageMap.PageShift);

    public void Start() => new Span<byte>(state.DirtyPages, (int)Math.Min(CommittedPages, int.MaxValue)).Clear();

    public int Collect(List<long> pages)
    {
        var map = state.DirtyPages;
        var n = CommittedPages;
        var found = 0;
        long i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var v = Vector256.Load(map + i);
            if (v == Vector256<byte>.Zero) continue;
            var bits = Vector256.ExtractMostSignificantBits(Vector256.Equals(v, Vector256<byte>.Zero)) ^ 0xFFFFFFFFu;
            Vector256<byte>.Zero.Store(map + i);
            while (bits != 0)
            {
                pages.Add(i + BitOperations.TrailingZeroCount(bits));
                bits &= bits - 1;
                found++;
            }
        }
        for (; i < n; i++)
        {
            if (map[i] == 0) continue;
            map[i] = 0;
            pages.Add(i);
            found++;
        }
        return found;
    }

    public void Dispose()
    {
    }
}
