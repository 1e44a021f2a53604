using Ferry.Enclave.Runtime;
using Ferry.Enclave.Tracking;
using Ferry.Migration.Protocol;

namespace Ferry.Cli.Runtime;

/// <summary>
/// Chooses the dirty-page tracker of a pre-copy (or hybrid) migration. Tracking is a parameter of every migration:
/// "compiler" reads the dirty-page map the compiled stores maintain (agent workloads are compiled with
/// DirtyTracking, so it is always there); "kernel" write-protects the linear memory with userfaultfd
/// (UFFD_FEATURE_WP_ASYNC) and reads the written pages back with the PAGEMAP_SCAN ioctl.
/// </summary>
public static class PageTrackers
{
    /// <summary>A factory of trackers for <paramref name="program"/>.</summary>
    /// <exception cref="TrackingUnavailableException">The method cannot be used here; the message says why and what to use instead.</exception>
    public static Func<IDirtyPageTracker> For(TrackingMethod method, GuestProgram program)
    {
        switch (method)
        {
            case TrackingMethod.Compiler when program.Instance.State.DirtyMap is null:
                throw new TrackingUnavailableException("compiler tracking needs a guest compiled with write tracking, and this one was not");
            case TrackingMethod.Compiler:
                return () => new CompilerDirtyTracker(program.Instance.State);
            case TrackingMethod.Kernel:
                var memory = program.Instance.Memory
                    ?? throw new TrackingUnavailableException("the workload has no linear memory to track");
                if (UserfaultfdSupport.Current.DirtyTrackingUnavailableReason is { } why)
                {
                    throw new TrackingUnavailableException($"kernel tracking is unavailable on this host ({why}); use --tracking compiler");
                }
                return () => new KernelDirtyTracker(memory);
            default:
                throw new TrackingUnavailableException($"unknown tracking method {method}");
        }
    }

    /// <summary>
    /// Whether the destination serves post-copy faults with userfaultfd (kernel) rather than compiled presence
    /// checks; when kernel was asked for but is unavailable, <paramref name="fallback"/> says why.
    /// </summary>
    public static bool KernelPostCopy(TrackingMethod method, out string? fallback)
    {
        fallback = null;
        if (method != TrackingMethod.Kernel) return false;
        if (UserfaultfdSupport.Current.MissingPagesUnavailableReason is { } why)
        {
            fallback = $"kernel post-copy unavailable ({why}); falling back to compiled presence checks";
            return false;
        }
        return true;
    }
}
