namespace Ferry.Wasm.Runtime;

/// <summary>Makes pages of linear memory present before an access proceeds (post-copy migration).</summary>
public interface IMissingPageHandler
{
    /// <summary>Blocks until every 4 KiB page overlapping [address, address + length) is present.</summary>
    void EnsurePresent(ulong address, ulong length);
}

/// <summary>
/// The state compiled code works on. The compiler derives one class per module from this, adding a field per
/// global and per imported function; each instance is one object of that class, passed as the first argument
/// of every compiled function.
/// </summary>
public abstract class InstanceBase
{
    /// <summary>Execution is running normally.</summary>
    public const int RunState = 0;
    /// <summary>A freeze was requested; the next safe point starts unwinding.</summary>
    public const int FreezeRequested = 1;
    /// <summary>Frames are being unwound into <see cref="Frames"/>; every caller saves its frame and returns.</summary>
    public const int Unwinding = 2;

    /// <summary>Checked (volatile) at every safe point; written by other threads to request a freeze.</summary>
    public volatile int Interrupt;

    public LinearMemory? Memory0;
    public Table? Table0;
    public Table[] Tables = [];
    /// <summary>Passive data segments by index; null once dropped (or after an active segment is applied).</summary>
    public byte[]?[] DataSegments = [];
    /// <summary>Element segments by index, as resolved references; null once dropped.</summary>
    public object?[]?[] ElementSegments = [];
    /// <summary>Every function of the module as a reference (imports first), for ref.func, exports and tables.</summary>
    public FuncRef[] Functions = [];

    /// <summary>Unwound or to-be-rewound frames.</summary>
    public readonly FrameStack Frames = new();

    /// <summary>
    /// Thrown and caught inside each compiled frame that unwinds (see <see cref="UnwindSignal"/>). One per instance,
    /// allocated up front: unwinding allocates nothing, and an instance runs on one thread at a time.
    /// </summary>
    public readonly UnwindSignal UnwindSignal = new();

    /// <summary>Dirty-page map written by compiled stores when the module was compiled with write tracking.</summary>
    public unsafe byte* DirtyPages;

    /// <summary>The maps behind <see cref="DirtyPages"/> and <see cref="AbsentPages"/>, kept alive with the instance.</summary>
    public PageMap? DirtyMap { get; internal set; }
    public PageMap? AbsentMap { get; internal set; }

    /// <summary>
    /// Absent-page map (1 = the 4 KiB page's contents have not arrived yet) tested by code compiled with presence
    /// checks. Zero means present, so a fresh map (the kernel's zero pages) needs no filling: a post-copy destination
    /// marks only the pending pages, and pages added by later growth are present by construction.
    /// Installed before such code runs and never freed while the instance lives (compiled code caches it).
    /// </summary>
    public unsafe byte* AbsentPages;

    /// <summary>Fetches missing pages for code compiled with presence checks (post-copy destinations).</summary>
    public IMissingPageHandler? MissingPages;


    public Instance Owner { get; internal set; } = null!;

    private CancellationTokenSource freezeSignal = new();

    /// <summary>
    /// Cancelled when a freeze is requested. Host functions that block (poll_oneoff, fd_read) wait on it too;
    /// when it fires they call <see cref="UnwindFromHost"/> and return, so the call is re-executed after resume.
    /// </summary>
    public CancellationToken FreezeToken => freezeSignal.Token;

    /// <summary>Asks running code to stop at its next safe point (any thread).</summary>
    public void RequestFreeze()
    {
        Interlocked.CompareExchange(ref Interrupt, FreezeRequested, RunState);
        freezeSignal.Cancel();
    }

    /// <summary>
    /// Called by a host function that gives up a blocking call because a freeze was requested: its caller records
    /// an "in call" safe point with the call's arguments, and the call runs again when the instance resumes.
    /// </summary>
    public void UnwindFromHost() => Interrupt = Unwinding;

    /// <summary>Returns to normal running after a freeze completed (or was abandoned).</summary>
    public void ClearInterrupt()
    {
        Interrupt = RunState;
        if (freezeSignal.IsCancellationRequested)
        {
            freezeSignal.Dispose();
            freezeSignal = new CancellationTokenSource();
        }
    }
}
