namespace Ferry.Wasm.Wasi;

/// <summary><c>$filetype</c> (u8).</summary>
public enum FileType : byte
{
    Unknown = 0,
    BlockDevice = 1,
    CharacterDevice = 2,
    Directory = 3,
    RegularFile = 4,
    SocketDgram = 5,
    SocketStream = 6,
    SymbolicLink = 7,
}

/// <summary><c>$rights</c> (u64 bit set).</summary>
[Flags]
public enum Rights : ulong
{
    None = 0,
    FdDatasync = 1UL << 0,
    FdRead = 1UL << 1,
    FdSeek = 1UL << 2,
    FdFdstatSetFlags = 1UL << 3,
    FdSync = 1UL << 4,
    FdTell = 1UL << 5,
    FdWrite = 1UL << 6,
    FdAdvise = 1UL << 7,
    FdAllocate = 1UL << 8,
    PathCreateDirectory = 1UL << 9,
    PathCreateFile = 1UL << 10,
    PathLinkSource = 1UL << 11,
    PathLinkTarget = 1UL << 12,
    PathOpen = 1UL << 13,
    FdReaddir = 1UL << 14,
    PathReadlink = 1UL << 15,
    PathRenameSource = 1UL << 16,
    PathRenameTarget = 1UL << 17,
    PathFilestatGet = 1UL << 18,
    PathFilestatSetSize = 1UL << 19,
    PathFilestatSetTimes = 1UL << 20,
    FdFilestatGet = 1UL << 21,
    FdFilestatSetSize = 1UL << 22,
    FdFilestatSetTimes = 1UL << 23,
    PathSymlink = 1UL << 24,
    PathRemoveDirectory = 1UL << 25,
    PathUnlinkFile = 1UL << 26,
    PollFdReadwrite = 1UL << 27,
    SockShutdown = 1UL << 28,
    SockAccept = 1UL << 29,
    All = (1UL << 30) - 1,

    /// <summary>What a regular file can do (the rights a file fd gets at most).</summary>
    RegularFile = FdDatasync | FdRead | FdSeek | FdFdstatSetFlags | FdSync | FdTell | FdWrite | FdAdvise | FdAllocate
        | FdFilestatGet | FdFilestatSetSize | FdFilestatSetTimes | PollFdReadwrite,
    /// <summary>What a directory can do itself (its inheriting rights are <see cref="All"/>).</summary>
    Directory = FdFdstatSetFlags | FdSync | FdAdvise | PathCreateDirectory | PathCreateFile | PathLinkSource
        | PathLinkTarget | PathOpen | FdReaddir | PathReadlink | PathRenameSource | PathRenameTarget | PathFilestatGet
        | PathFilestatSetSize | PathFilestatSetTimes | FdFilestatGet | FdFilestatSetTimes | PathSymlink
        | PathRemoveDirectory | PathUnlinkFile,
    /// <summary>A terminal or pipe: no seeking.</summary>
    Stream = FdDatasync | FdRead | FdFdstatSetFlags | FdSync | FdWrite | FdAdvise | FdFilestatGet | PollFdReadwrite,
}

/// <summary><c>$fdflags</c> (u16).</summary>
[Flags]
public enum FdFlags : ushort
{
    None = 0,
    Append = 1,
    Dsync = 2,
    NonBlock = 4,
    Rsync = 8,
    Sync = 16,
}

/// <summary><c>$oflags</c> (u16).</summary>
[Flags]
public enum OFlags : ushort
{
    None = 0,
    Creat = 1,
    Directory = 2,
    Excl = 4,
    Trunc = 8,
}

/// <summary>Layout constants and small enums of the preview1 ABI.</summary>
public static class WasiAbi
{
    public const string ModuleName = "wasi_snapshot_preview1";

    // $lookupflags
    public const int LookupSymlinkFollow = 1;

    // $fstflags
    public const int FstAtim = 1, FstAtimNow = 2, FstMtim = 4, FstMtimNow = 8;

    // $whence
    public const int WhenceSet = 0, WhenceCur = 1, WhenceEnd = 2;

    // $clockid
    public const int ClockRealtime = 0, ClockMonotonic = 1, ClockProcessCpu = 2, ClockThreadCpu = 3;

    // $eventtype
    public const byte EventClock = 0, EventFdRead = 1, EventFdWrite = 2;

    // $subclockflags
    public const int SubscriptionClockAbstime = 1;

    // $eventrwflags
    public const ushort EventFdReadwriteHangup = 1;

    // $advice (all accepted; advice is a hint)
    public const int AdviceNoReuse = 5;

    // $preopentype
    public const byte PreopenDir = 0;

    /// <summary>Sizes of the records functions read or write (bytes).</summary>
    public const int IovecSize = 8, FilestatSize = 64, FdstatSize = 24, PrestatSize = 8, DirentSize = 24,
        SubscriptionSize = 48, EventSize = 32;
}
