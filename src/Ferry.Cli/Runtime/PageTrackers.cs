using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration.Protocol;

namespace Ferry.Cli.Runtime;

/// <summary>The requested write-tracking method cannot be used here.</summary>
public sealed class TrackingUnavailableException(string message) : Exception(message);

/// <summary>
/// Chooses the page tracker of a pre-copy (or hybrid) migration. Tracking is a parameter of every migration:
/// "compiler" reads the dirty-page map the compiled stores maintain (the guest runs compiled with
/// DirtyTracking); "kernel" will be userfaultfd write-protection read back with PAGEMAP_SCAN (an
/// <see cref="IPageTracker"/> being built separately) — this is the one place it plugs in.
/// </summary>
public static class PageTrackers
{
    public const string KernelUnavailable = "kernel tracking not available in this build yet (use --tracking compiler)";

    /// <summary>A factory of trackers for <paramref name="program"/>, or an exception saying why there is none.</summary>
    public static Func<IPageTracker> For(TrackingMethod method, GuestProgram program) => method switch
    {
        TrackingMethod.Compiler when program.Instance.State.DirtyMap is null =>
            throw new TrackingUnavailableException("compiler tracking needs a guest compiled with write tracking, and this one was not"),
        TrackingMethod.Compiler => () => new CompilerPageTracker(program.Instance.State),
        TrackingMethod.Kernel => throw new TrackingUnavailableException(KernelUnavailable),
        _ => throw new TrackingUnavailableException($"unknown tracking method {method}"),
    };
}
