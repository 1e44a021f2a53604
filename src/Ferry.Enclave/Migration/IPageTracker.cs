namespace Ferry.Enclave.Migration;

/// <summary>Reports the 4 KiB pages of linear memory written since the last collection (pre-copy rounds).</summary>
public interface IPageTracker : IDisposable
{
    /// <summary>"compiler" or "kernel".</summary>
    string Method { get; }

    /// <summary>Forget earlier writes; report only pages written from now on.</summary>
    void Start();

    /// <summary>Appends the pages written since the last Start/Collect (and re-arms them); returns how many.</summary>
    int Collect(List<long> pages);
}
