namespace Ferry.Enclave.Tracking;

/// <summary>
/// Kernel-based tracking cannot be used here. <see cref="Reason"/> says why in words a user can act on (not root,
/// a sysctl, a kernel too old, a missing feature); callers fall back to compiler-based tracking and show it.
/// </summary>
public sealed class TrackingUnavailableException : Exception
{
    public TrackingUnavailableException(string reason)
        : base("kernel-based tracking is unavailable: " + reason)
    {
        Reason = reason;
    }

    public TrackingUnavailableException(string reason, Exception inner)
        : base("kernel-based tracking is unavailable: " + reason, inner)
    {
        Reason = reason;
    }

    /// <summary>Why, without the "unavailable" prefix.</summary>
    public string Reason { get; }
}

/// <summary>A userfaultfd or PAGEMAP_SCAN call failed after tracking had been set up (not a missing feature).</summary>
public sealed class TrackingException : Exception
{
    public TrackingException(string operation, int errno)
        : base($"{operation} failed: {Native.Describe(errno)}")
    {
        Operation = operation;
        Errno = errno;
    }

    public string Operation { get; }
    public int Errno { get; }
}
