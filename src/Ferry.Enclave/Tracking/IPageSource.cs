namespace Ferry.Enclave.Tracking;

/// <summary>
/// Where a post-copy destination gets pages it faults on: usually the migration connection back to the source host.
/// </summary>
/// <remarks>
/// Synchronous by design: <see cref="MissingPageServer"/> calls it on its own dedicated handler thread (not the
/// thread pool) while the faulting thread is blocked in the kernel, and resolves the fault when it returns. It may
/// block (e.g. on a socket request/response) and may wait for asynchronous work that runs on the thread pool; it
/// must not touch the destination memory itself. Calls are serialised (one fault at a time). A source that receives
/// pages in the background should push them with <see cref="MissingPageServer.Install"/> instead; faults on pages
/// pushed meanwhile are resolved without asking the source.
/// </remarks>
public interface IPageSource
{
    /// <summary>
    /// Fills <paramref name="destination"/> (exactly 4096 bytes) with page <paramref name="pageIndex"/> of the source
    /// memory and returns true, or returns false if the page is all zeros (it is then mapped with UFFDIO_ZEROPAGE and
    /// <paramref name="destination"/> is ignored). Throwing leaves the faulting thread waiting: see
    /// <see cref="MissingPageServer.SourceFailed"/>.
    /// </summary>
    bool ReadPage(long pageIndex, Span<byte> destination, CancellationToken cancellationToken);
}
