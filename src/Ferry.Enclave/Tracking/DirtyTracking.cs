using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tracking;

/// <summary>Choosing between kernel and compiler dirty tracking.</summary>
/// <remarks>
/// The choice is made before compiling: code compiled with <c>CompileOptions.DirtyTracking</c> marks pages in
/// <see cref="InstanceBase.DirtyPages"/> on every store, so it needs that map installed (a
/// <see cref="CompilerDirtyTracker"/>) before it runs and gains nothing from the kernel method; code compiled without
/// it can only be tracked by the kernel.
/// </remarks>
public static class DirtyTracking
{
    /// <summary>
    /// Whether to compile with <c>CompileOptions.DirtyTracking</c>: false when the kernel method works here, true
    /// otherwise, with a message for the log that says which method is used and why.
    /// </summary>
    public static (bool CompileWithDirtyTracking, string Message) Choose()
    {
        var support = UserfaultfdSupport.Current;
        return support.CanTrackDirtyPages
            ? (false, $"dirty-page tracking: kernel (userfaultfd write-protect via {support.OpenedVia}, PAGEMAP_SCAN)")
            : (true, $"dirty-page tracking: compiler (kernel tracking unavailable: {support.DirtyTrackingUnavailableReason})");
    }

    /// <summary>
    /// The tracker for <paramref name="instance"/>: a <see cref="CompilerDirtyTracker"/> if its module was compiled
    /// with dirty tracking, a <see cref="KernelDirtyTracker"/> otherwise.
    /// </summary>
    /// <exception cref="TrackingUnavailableException">The module was compiled without tracking and the kernel method
    /// is unavailable; the message gives the kernel's reason and says to compile with tracking.</exception>
    public static IDirtyPageTracker Create(Instance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Compiled.Options.DirtyTracking) return new CompilerDirtyTracker(instance.State);
        var memory = instance.Memory ?? throw new InvalidOperationException("the instance has no linear memory to track");
        var support = UserfaultfdSupport.Current;
        if (!support.CanTrackDirtyPages)
        {
            throw new TrackingUnavailableException(support.DirtyTrackingUnavailableReason
                + "; compile the module with CompileOptions.DirtyTracking = true to use compiler tracking instead");
        }
        return new KernelDirtyTracker(memory);
    }
}
