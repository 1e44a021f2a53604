using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Tests;

public class GuestProgramTests
{
    /// <summary>
    /// Sums i·i for i below 3,000,000, calling env.pause(i) at i = 1,000 (a host call that blocks until a freeze
    /// interrupts it), and reports the sum through env.done.
    /// </summary>
    private const string Summer = """
        (module
          (import "env" "pause" (func $pause (param i32)))
          (import "env" "done" (func $done (param i64)))
          (func (export "_start") (local $i i32) (local $sum i64)
            (loop $l
              (if (i32.eq (local.get $i) (i32.const 1000)) (then (call $pause (local.get $i))))
              (local.set $sum (i64.add (local.get $sum) (i64.mul (i64.extend_i32_u (local.get $i)) (i64.extend_i32_u (local.get $i)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 3000000))))
            (call $done (local.get $sum)))
        )
        """;

    /// <summary>
    /// A migration source compiles its guest's resume versions ahead (<see cref="Execution.WarmUpResume"/>), so that
    /// auto-converge's resumes do not wait for the JIT with the guest frozen.
    /// </summary>
    [Fact]
    public async Task Resume_versions_compiled_ahead_ready_a_stack_shape_never_resumed()
    {
        var env = new PauseEnvironment();
        using var program = GuestProgram.Create(Wat.Load(Summer), env, CompileOptions.Default, InstanceOptions.Default);
        var frozen = await FreezeInPauseAsync(program, env);
        Assert.False(Execution.IsResumeReady(program.Instance, frozen.Frames));
        Assert.Equal(0, Execution.WarmUpResume(program.Instance.Compiled, TimeSpan.Zero));

        Assert.True(Execution.WarmUpResume(program.Instance.Compiled, TimeSpan.FromSeconds(60)) > 0);
        Assert.True(Execution.IsResumeReady(program.Instance, frozen.Frames));
        Assert.Equal(0, Execution.WarmUpResume(program.Instance.Compiled, TimeSpan.FromSeconds(60))); // nothing left

        env.Open.Set();
        program.Unfreeze();
        await AssertFinishesWithTheSumAsync(program, env);
    }

    [Fact]
    public async Task A_freeze_during_the_first_resume_compile_takes_effect_without_waiting_for_it()
    {
        var env = new PauseEnvironment();
        using var program = GuestProgram.Create(Wat.Load(Summer), env, CompileOptions.Default, InstanceOptions.Default);
        var first = await FreezeInPauseAsync(program, env);
        Assert.False(Execution.IsResumeReady(program.Instance, first.Frames)); // nothing has resumed these frames yet

        // The resume compiles on another thread, held back here: a freeze asked for meanwhile must not wait for it.
        using var release = new ManualResetEventSlim();
        var compiling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        program.BeforeResumeCompile = () =>
        {
            compiling.TrySetResult();
            release.Wait(TimeSpan.FromSeconds(60));
        };
        env.Open.Set();
        program.Unfreeze();
        await compiling.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var second = await program.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Same(first.Frames, second.Frames); // no guest instruction ran: the same frozen frames
        Assert.Equal(first.FrozenAtUnixNanos, second.FrozenAtUnixNanos);
        Assert.False(program.Completion.IsCompleted);

        release.Set();
        program.Unfreeze();
        await AssertFinishesWithTheSumAsync(program, env);
        Assert.True(Execution.IsResumeReady(program.Instance, first.Frames));
    }

    /// <summary>Starts the program and freezes it while it blocks in env.pause (the frames have never been resumed).</summary>
    private static async Task<FrozenGuest> FreezeInPauseAsync(GuestProgram program, PauseEnvironment env)
    {
        program.Start();
        await env.Paused.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return await program.FreezeAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>The program runs to its end and reports the sum of an uninterrupted run.</summary>
    private static async Task AssertFinishesWithTheSumAsync(GuestProgram program, PauseEnvironment env)
    {
        var end = await program.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(GuestEndKind.Exited, end.Kind);
        long expected = 0;
        for (long i = 0; i < 3_000_000; i++) expected += i * i;
        Assert.Equal(expected, await env.Done.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>env.pause blocks until <see cref="Open"/> is set or a freeze interrupts it (then the call is re-run after the resume).</summary>
    private sealed class PauseEnvironment : IGuestEnvironment
    {
        private InstanceBase? state;

        public ManualResetEventSlim Open { get; } = new();
        public TaskCompletionSource Paused { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<long> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Define(Linker linker)
        {
            linker.DefineFunction("env", "pause", new FuncType([Wasm.ValueType.I32], []), new Action<int>(_ =>
            {
                Paused.TrySetResult();
                try
                {
                    Open.Wait(state!.FreezeToken);
                }
                catch (OperationCanceledException)
                {
                    state!.UnwindFromHost();
                }
            }));
            linker.DefineFunction("env", "done", new FuncType([Wasm.ValueType.I64], []), new Action<long>(v => Done.TrySetResult(v)));
        }

        public void Bind(Instance instance) => state = instance.State;

        public byte[] CaptureState() => [];

        public int? ExitCodeOf(Exception e) => null;

        public void Flush()
        {
        }

        public void Dispose() => Open.Dispose();
    }
}
