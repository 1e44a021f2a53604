using System.Diagnostics;
using System.IO.Pipes;
using System.Text;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>
/// A guest blocked in poll_oneoff or in a stdin read must not block a freeze: the call gives up at once, consumes
/// nothing, writes nothing, and the instance unwinds with the call recorded for re-execution.
/// </summary>
public sealed class FreezeTests
{
    private const string Program = """
        (module
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          ;; Sleeps 10 s: one relative monotonic-clock subscription at 0, events at 100, nevents at 200.
          (func $sleep (export "sleep") (result i32)
            (i64.store (i32.const 0) (i64.const 7))
            (i32.store8 (i32.const 8) (i32.const 0))
            (i32.store (i32.const 16) (i32.const 1))
            (i64.store (i32.const 24) (i64.const 10000000000))
            (i64.store (i32.const 32) (i64.const 0))
            (i32.store16 (i32.const 40) (i32.const 0))
            (i32.store (i32.const 200) (i32.const 12345))
            (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
          ;; Reads stdin into 400..464: iovec at 300, nread at 500.
          (func $read_stdin (export "read") (result i32)
            (i32.store (i32.const 300) (i32.const 400))
            (i32.store (i32.const 304) (i32.const 64))
            (i32.store (i32.const 500) (i32.const 12345))
            (call $read (i32.const 0) (i32.const 300) (i32.const 1) (i32.const 500))))
        """;

    /// <summary>Runs <paramref name="export"/> on a thread, freezes once the guest blocks, returns how long the call took.</summary>
    private static TimeSpan FreezeWhileBlocked(WasiRun run, string export, out string blockedIn)
    {
        using var blocked = new ManualResetEventSlim();
        string? where = null;
        run.Context.Blocking += f =>
        {
            where = f;
            blocked.Set();
        };
        var sw = new Stopwatch();
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                sw.Start();
                run.Instance.Invoke(export);
                sw.Stop();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        thread.Start();
        Assert.True(blocked.Wait(TimeSpan.FromSeconds(30)), "the guest never blocked");
        run.Instance.State.RequestFreeze();
        Assert.True(thread.Join(TimeSpan.FromSeconds(30)), "the blocked call did not return after the freeze request");
        Assert.Null(error);
        blockedIn = where!;
        return sw.Elapsed;
    }

    [Fact]
    public void A_ten_second_sleep_in_poll_oneoff_gives_way_to_a_freeze()
    {
        using var run = new WasiRun(Env.Wat(Program), new WasiOptions());
        var elapsed = FreezeWhileBlocked(run, "sleep", out var where);
        Assert.Equal("poll_oneoff", where);
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"took {elapsed}");
        var state = run.Instance.State;
        Assert.Equal(InstanceBase.Unwinding, state.Interrupt);
        // The sleeping function's frame was recorded at the call, for re-execution after resume.
        Assert.Single(state.Frames.Captured);
        Assert.Equal("sleep", run.Instance.Module.FunctionName(state.Frames.Captured[0].FunctionIndex));
        // No event was written.
        Assert.Equal(12345, BitConverter.ToInt32(run.Instance.Memory!.Span(200, 4)));
    }

    [Fact]
    public void A_blocked_stdin_read_gives_way_to_a_freeze_without_consuming_input()
    {
        using var pipe = new AnonymousPipeServerStream(PipeDirection.Out);
        using var reader = new AnonymousPipeClientStream(PipeDirection.In, pipe.ClientSafePipeHandle);
        var fd = (int)pipe.ClientSafePipeHandle.DangerousGetHandle();
        using var run = new WasiRun(Env.Wat(Program), new WasiOptions { Stdin = WasiStdio.FromHostFd(fd) });
        var elapsed = FreezeWhileBlocked(run, "read", out var where);
        Assert.Equal("fd_read", where);
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"took {elapsed}");
        Assert.Equal(InstanceBase.Unwinding, run.Instance.State.Interrupt);
        Assert.Single(run.Instance.State.Frames.Captured);
        Assert.Equal(12345, BitConverter.ToInt32(run.Instance.Memory!.Span(500, 4)));

        // Input arriving now is still all in the pipe: the frozen read took nothing.
        pipe.Write("hello"u8);
        pipe.Flush();
        var buf = new byte[5];
        reader.ReadExactly(buf);
        Assert.Equal("hello", Encoding.ASCII.GetString(buf));
    }

    [Fact]
    public void After_a_freeze_is_cleared_the_same_calls_work_again()
    {
        using var pipe = new AnonymousPipeServerStream(PipeDirection.Out);
        var fd = (int)pipe.ClientSafePipeHandle.DangerousGetHandle();
        using var run = new WasiRun(Env.Wat(Program), new WasiOptions { Stdin = WasiStdio.FromHostFd(fd) });
        FreezeWhileBlocked(run, "read", out _);
        run.Instance.State.Frames.Clear();
        run.Instance.State.ClearInterrupt();
        pipe.Write("abc"u8);
        pipe.Flush();
        Assert.Equal(0, run.Instance.Invoke("read")[0].I32);
        Assert.Equal(3, BitConverter.ToInt32(run.Instance.Memory!.Span(500, 4)));
        Assert.Equal("abc", Encoding.ASCII.GetString(run.Instance.Memory!.Span(400, 3)));
    }
}
