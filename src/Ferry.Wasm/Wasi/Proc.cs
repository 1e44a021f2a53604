namespace Ferry.Wasm.Wasi;

public sealed partial class WasiHost
{
    /// <summary>
    /// proc_exit(rval: u32): ends the program. Buffered output is written, then <see cref="WasiExitException"/>
    /// unwinds the guest's stack to the host (<see cref="RunStart"/> returns the code).
    /// </summary>
    private void ProcExit(int code)
    {
        Context.FlushOutput();
        throw new WasiExitException(code);
    }

    /// <summary>proc_raise(sig: u8): signals are not delivered to WASI guests here; NoSys (as wasmtime).</summary>
    private static int ProcRaise(int signal) => Fail(Errno.NoSys);

    /// <summary>sched_yield(): yields the host thread.</summary>
    private static int SchedYield()
    {
        Sys.sched_yield();
        return Ok;
    }
}
