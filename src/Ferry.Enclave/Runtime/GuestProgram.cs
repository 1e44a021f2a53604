using System.Diagnostics;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Hosting;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Runtime;

/// <summary>How a guest program ended.</summary>
public enum GuestEndKind
{
    /// <summary>It returned from its entry point or called exit; see <see cref="GuestEnd.ExitCode"/>.</summary>
    Exited,
    /// <summary>It trapped; see <see cref="GuestEnd.Message"/> and <see cref="GuestEnd.Backtrace"/>.</summary>
    Trapped,
    /// <summary>It was frozen and handed over (migrated or checkpointed); it will never run here again.</summary>
    Retired,
    /// <summary>The runtime failed (a host error, not the program's).</summary>
    Failed,
}

public sealed record GuestEnd(GuestEndKind Kind, int ExitCode, string? Message = null, IReadOnlyList<string>? Backtrace = null);

/// <summary>A frozen guest: its portable frames and when its last instruction ran.</summary>
public sealed record FrozenGuest(IReadOnlyList<FrameRecord> Frames, long FrozenAtUnixNanos, TimeSpan FreezeLatency);

/// <summary>The guest ended (or was already frozen/retired) while a freeze was requested.</summary>
public sealed class GuestNotRunningException(string message) : InvalidOperationException(message);

/// <summary>
/// One guest program running on its own thread (big stack), which can be frozen at a safe point, continued,
/// or retired. All state changes happen on that thread; other threads send it commands.
/// </summary>
public sealed class GuestProgram : IDisposable
{
    private enum Command { None, Resume, Retire }

    private readonly object gate = new();
    private readonly TaskCompletionSource<GuestEnd> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource<FrozenGuest>? freezeWaiter;
    private Command command;
    private IReadOnlyList<FrameRecord>? frozenFrames;
    private long freezeRequestedTicks;
    private Thread? thread;

    public GuestProgram(Instance instance, IGuestEnvironment environment)
    {
        Instance = instance;
        Environment = environment;
    }

    public Instance Instance { get; }
    public IGuestEnvironment Environment { get; }
    public Task<GuestEnd> Completion => completion.Task;
    public bool IsFrozen
    {
        get
        {
            lock (gate) return frozenFrames is not null;
        }
    }

    /// <summary>Compiles and instantiates a module with an environment (the program does not run yet).</summary>
    public static GuestProgram Create(Module module, IGuestEnvironment environment, CompileOptions compile, InstanceOptions instance)
    {
        var compiled = ModuleCompiler.Compile(module, compile);
        var linker = new Linker();
        environment.Define(linker);
        var inst = Instance.Instantiate(compiled, linker, instance with { RunStart = false });
        environment.Bind(inst);
        return new GuestProgram(inst, environment);
    }

    /// <summary>Runs the module's start function (if any) and then <c>_start</c>.</summary>
    public void Start() => Launch(() =>
    {
        if (Instance.Module.StartFunction is { } s) Instance.Invoke(Instance.State.Functions[s]);
        var entry = Instance.Exports.TryGetValue("_start", out var e) && e is FuncRef f
            ? f
            : throw new LinkException("the module has no _start export");
        return Execution.Call(Instance, entry);
    });

    /// <summary>Continues a program from frozen frames (restored from a snapshot or received by migration).</summary>
    public void StartFrom(IReadOnlyList<FrameRecord> frames) =>
        Launch(() => FreezeOvertookResumeCompile(frames) ? CallOutcome.Frozen(frames) : Execution.Resume(Instance, frames));

    private void Launch(Func<CallOutcome> first)
    {
        lock (gate)
        {
            if (thread is not null) throw new InvalidOperationException("the program is already running");
            thread = new Thread(() => Run(first), WasmThread.StackBytes) { Name = "guest", IsBackground = true };
            thread.Start();
        }
    }

    private void Run(Func<CallOutcome> first)
    {
        GuestEnd end;
        try
        {
            var outcome = first();
            var frozenAt = UnixNanosNow();
            while (outcome.IsFrozen)
            {
                Environment.Flush();
                var cmd = WaitWhileFrozen(outcome.Frames!, frozenAt);
                if (cmd == Command.Retire)
                {
                    completion.TrySetResult(new GuestEnd(GuestEndKind.Retired, 0));
                    return;
                }
                // Overtaken: still frozen on the same frames, and no guest instruction ran, so the same frozenAt.
                if (FreezeOvertookResumeCompile(outcome.Frames!)) continue;
                outcome = Execution.Resume(Instance, outcome.Frames!);
                frozenAt = UnixNanosNow();
            }
            end = new GuestEnd(GuestEndKind.Exited, outcome.Results is [var r, ..] && r.Type == Wasm.ValueType.I32 ? r.I32 : 0);
        }
        catch (TrapException trap)
        {
            end = new GuestEnd(GuestEndKind.Trapped, 134, trap.Message, Instance.Backtrace(trap));
        }
        catch (Exception e) when (Environment.ExitCodeOf(e) is { } code)
        {
            end = new GuestEnd(GuestEndKind.Exited, code);
        }
        catch (Exception e)
        {
            end = new GuestEnd(GuestEndKind.Failed, 1, $"{e.GetType().Name}: {e.Message}");
        }
        try
        {
            Environment.Flush();
        }
        catch (IOException)
        {
        }
        lock (gate)
        {
            freezeWaiter?.TrySetException(new GuestNotRunningException($"the program ended ({end.Kind}) before it could be frozen"));
            freezeWaiter = null;
        }
        completion.TrySetResult(end);
    }

    // Resume code a freeze overtook keeps compiling here; the next resume of the same frames waits for it.
    private Task? resumeCompile;

    /// <summary>For tests: runs on the compiling thread before the resume code is compiled (to hold the compile back).</summary>
    internal Action? BeforeResumeCompile { get; set; }

    /// <summary>
    /// Before frames resume: if their resume code is not compiled yet (the first resume of a stack shape: a
    /// large function's version takes the JIT 10–20 ms), compiles it on another thread and waits for it or for a
    /// freeze request, whichever comes first. A freeze then takes effect at once with the same frames — the guest
    /// reaches no safe point while the JIT works for it, so without this a freeze asked for just after a resume
    /// waited for the whole compile (14.6 ms once, docs/benchmarks.md). True: stay frozen.
    /// </summary>
    /// <exception cref="FrameMismatchException">The frames do not fit the code (from <see cref="Execution.PrepareResume"/>).</exception>
    private bool FreezeOvertookResumeCompile(IReadOnlyList<FrameRecord> frames)
    {
        if (resumeCompile is null && Execution.IsResumeReady(Instance, frames)) return false;
        // Its own thread, not the pool's: the guest must not wait for a pool thread to come free.
        var compile = resumeCompile ??= Task.Factory.StartNew(() =>
        {
            BeforeResumeCompile?.Invoke();
            return Execution.PrepareResume(Instance, frames);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            compile.Wait(Instance.State.FreezeToken);
        }
        catch (OperationCanceledException)
        {
            // A freeze was requested. If the compile finished just as well, resume: the freeze takes effect at the
            // first safe point.
            if (!compile.IsCompleted)
            {
                Instance.State.ClearInterrupt(); // this is the freeze: nothing to unwind
                return true;
            }
        }
        catch (AggregateException)
        {
            // rethrown below, unwrapped
        }
        resumeCompile = null;
        compile.GetAwaiter().GetResult();
        return false;
    }

    private Command WaitWhileFrozen(IReadOnlyList<FrameRecord> frames, long frozenAt)
    {
        lock (gate)
        {
            frozenFrames = frames;
            var latency = freezeRequestedTicks == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(freezeRequestedTicks);
            var waiter = freezeWaiter;
            freezeWaiter = null;
            waiter?.TrySetResult(new FrozenGuest(frames, frozenAt, latency));
            while (command == Command.None) Monitor.Wait(gate);
            var cmd = command;
            command = Command.None;
            frozenFrames = null;
            if (freezeWaiter is null) freezeRequestedTicks = 0; // else: a freeze asked for while the resume was pending
            return cmd;
        }
    }

    /// <summary>Stops the program at its next safe point. Completes with its frames, or fails if it ends first.</summary>
    public Task<FrozenGuest> FreezeAsync()
    {
        lock (gate)
        {
            if (completion.Task.IsCompleted) return Task.FromException<FrozenGuest>(new GuestNotRunningException("the program has ended"));
            if (command == Command.Retire) return Task.FromException<FrozenGuest>(new GuestNotRunningException("the program is being retired"));
            // Frozen, and not about to run again. (Frozen with a resume already sent — the guest thread has not woken
            // yet — is running for our purposes: the request below stays pending through the resume and takes
            // effect at its first safe point. Answering "frozen" there let a quick freeze after an unfreeze believe
            // in a freeze that was about to end: auto-converge's cycles hit it.)
            if (frozenFrames is not null && command == Command.None) return Task.FromResult(new FrozenGuest(frozenFrames, UnixNanosNow(), TimeSpan.Zero));
            freezeWaiter ??= new TaskCompletionSource<FrozenGuest>(TaskCreationOptions.RunContinuationsAsynchronously);
            freezeRequestedTicks = Stopwatch.GetTimestamp();
            Instance.State.RequestFreeze();
            return freezeWaiter.Task;
        }
    }

    /// <summary>Continues a frozen program here (e.g. a migration was aborted).</summary>
    public void Unfreeze() => Send(Command.Resume);

    /// <summary>A frozen program will never run here again (it now runs elsewhere, or lives in a checkpoint).</summary>
    public void Retire() => Send(Command.Retire);

    private void Send(Command c)
    {
        lock (gate)
        {
            if (frozenFrames is null) throw new GuestNotRunningException("the program is not frozen");
            command = c;
            Monitor.PulseAll(gate);
        }
    }

    public static long UnixNanosNow() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    public void Dispose()
    {
        lock (gate)
        {
            if (frozenFrames is not null && command == Command.None)
            {
                command = Command.Retire;
                Monitor.PulseAll(gate);
            }
        }
        Environment.Dispose();
    }
}
