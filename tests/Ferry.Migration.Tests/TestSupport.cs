using System.Diagnostics;
using Ferry.Enclave.Runtime;
using Ferry.Wasm;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Migration.Tests;

public static class Wat
{
    public static byte[] ToWasm(string wat)
    {
        var dir = Path.Combine(Path.GetTempPath(), "ferry-mt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "m.wat"), wat);
            var psi = new ProcessStartInfo("wat2wasm") { RedirectStandardError = true };
            psi.ArgumentList.Add(Path.Combine(dir, "m.wat"));
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add(Path.Combine(dir, "m.wasm"));
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException(err);
            return File.ReadAllBytes(Path.Combine(dir, "m.wasm"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static Module Load(byte[] bytes)
    {
        var m = ModuleDecoder.Decode(bytes);
        ModuleValidator.Validate(m);
        return m;
    }
}

/// <summary>
/// A guest environment for migration tests: env.gate() blocks until the test opens it — interruptibly, so a
/// freeze can take the guest while it waits (the call then runs again wherever the guest resumes) — and
/// env.done(i64) reports the program's result.
/// </summary>
public sealed class GateEnvironment : IGuestEnvironment
{
    private InstanceBase? state;

    public GateEnvironment(bool open)
    {
        Gate = new ManualResetEventSlim(open);
        SecondGate = new ManualResetEventSlim(open);
    }

    /// <summary>env.gate(1): the test waits for the guest to reach it, then opens it.</summary>
    public ManualResetEventSlim Gate { get; }
    /// <summary>env.gate(2): closed on the source, so the guest is certainly still running when it is frozen.</summary>
    public ManualResetEventSlim SecondGate { get; }
    public TaskCompletionSource<long> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TaskCompletionSource Waiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Set when the guest reaches gate 2.</summary>
    public TaskCompletionSource WaitingAtSecond { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Define(Linker linker)
    {
        linker.DefineFunction("env", "gate", new FuncType([Ferry.Wasm.ValueType.I32], []), new Action<int>(id =>
        {
            if (id == 1) Waiting.TrySetResult();
            else WaitingAtSecond.TrySetResult();
            var token = state!.FreezeToken;
            try
            {
                (id == 1 ? Gate : SecondGate).Wait(token);
            }
            catch (OperationCanceledException)
            {
                state.UnwindFromHost();
            }
        }));
        linker.DefineFunction("env", "done", new FuncType([Ferry.Wasm.ValueType.I64], []), new Action<long>(v => Done.TrySetResult(v)));
        linker.DefineFunction("env", "quiet", new FuncType([Ferry.Wasm.ValueType.I32], []), new Action<int>(value =>
        {
            if (QuietUntilFreeze)
            {
                QuietEntered.TrySetResult();
                state!.FreezeToken.WaitHandle.WaitOne();
                if (Interlocked.Increment(ref quietFreezes) > 1)
                {
                    state.UnwindFromHost(); // called again after the resume
                    return;
                }
            }
            MemoryOps.Fill(0, value, 0x400000, state!);
        }));
    }

    /// <summary>
    /// env.quiet(v) fills the first 4 MiB (1,024 pages) with v. With this set it first writes nothing until a freeze
    /// is requested: the first request it answers by filling and returning — a guest that starts writing after the
    /// source decided to freeze it, before the freeze takes effect — later ones by unwinding (no writes).
    /// </summary>
    public bool QuietUntilFreeze { get; init; }

    /// <summary>Set when the guest first waits in env.quiet.</summary>
    public TaskCompletionSource QuietEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int quietFreezes;

    public void Bind(Instance instance) => state = instance.State;

    public byte[] CaptureState() => [];

    public int? ExitCodeOf(Exception e) => null;

    public void Flush()
    {
    }

    public void Dispose()
    {
        Gate.Dispose();
        SecondGate.Dispose();
    }
}

public static class Programs
{
    /// <summary>
    /// Writes a word into each of its 1,024 pages (so pre-copy's round 0 has pages to measure the bandwidth with),
    /// calls env.quiet(1) and env.quiet(2) (each fills 4 MiB with its argument; see
    /// <see cref="GateEnvironment.QuietUntilFreeze"/>) and reports an FNV-style hash of that memory.
    /// </summary>
    public const string QuietFiller = """
        (module
          (import "env" "quiet" (func $quiet (param i32)))
          (import "env" "done" (func $done (param i64)))
          (memory 64)
          (func (export "_start") (local $i i32) (local $h i64) (local $p i32)
            (loop $w
              (i32.store (local.get $p) (i32.const 7))
              (local.set $p (i32.add (local.get $p) (i32.const 4096)))
              (br_if $w (i32.lt_u (local.get $p) (i32.const 0x400000))))
            (local.set $p (i32.const 0))
            (loop $l
              (call $quiet (i32.add (local.get $i) (i32.const 1)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 2))))
            (loop $s
              (local.set $h (i64.add (i64.mul (local.get $h) (i64.const 1099511628211)) (i64.load (local.get $p))))
              (local.set $p (i32.add (local.get $p) (i32.const 8)))
              (br_if $s (i32.lt_u (local.get $p) (i32.const 0x400000))))
            (call $done (local.get $h)))
        )
        """;

    /// <summary>
    /// Waits at gate 1, then stores to random words of 4 MiB (1,024 pages) for <paramref name="iterations"/>
    /// iterations, and reports an FNV-style hash of that memory: a guest that dirties pages for as long as a migration runs.
    /// </summary>
    public static string Spinner(int iterations) => """
        (module
          (import "env" "gate" (func $gate (param i32)))
          (import "env" "done" (func $done (param i64)))
          (memory 64)
          (func (export "_start") (local $i i32) (local $x i32) (local $h i64)
            (call $gate (i32.const 1))
            (local.set $x (i32.const 12345))
            (loop $l
              (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
              (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
              (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
              (i32.store (i32.and (local.get $x) (i32.const 0x3FFFFC)) (local.get $i))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const ITERATIONS))))
            (local.set $i (i32.const 0))
            (loop $s
              (local.set $h (i64.add (i64.mul (local.get $h) (i64.const 1099511628211)) (i64.load (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 8)))
              (br_if $s (i32.lt_u (local.get $i) (i32.const 0x400000))))
            (call $done (local.get $h)))
        )
        """.Replace("ITERATIONS", iterations.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>
    /// Writes pseudo-random pages of a 4 MiB memory, passing gate 1 (where the test starts migrating and lets it
    /// go on) and gate 2 (closed on the source), and reports a checksum of memory.
    /// </summary>
    public static readonly string Writer = WriterProgram(grow: false);

    /// <summary>
    /// <see cref="Writer"/>, but past gate 1 it grows its memory from 4 to 8 MiB and stores to random words of all
    /// of it; the hash covers the 8 MiB. A guest whose memory is larger at the freeze than at the setup.
    /// </summary>
    public static readonly string Grower = WriterProgram(grow: true);

    private static string WriterProgram(bool grow) => """
        (module
          (import "env" "gate" (func $gate (param i32)))
          (import "env" "done" (func $done (param i64)))
          (memory 64)
          (func (export "_start") (local $i i32) (local $x i32) (local $h i64) (local $mask i32)
            (local.set $x (i32.const 12345))
            (local.set $mask (i32.const 0x3FFFFC))
            (loop $l
              (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
              (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
              (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
              (i32.store (i32.and (local.get $x) (local.get $mask)) (local.get $i))
              (if (i32.eq (local.get $i) (i32.const 50000)) (then (call $gate (i32.const 1)) GROW))
              (if (i32.eq (local.get $i) (i32.const 150000)) (then (call $gate (i32.const 2))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 200000))))
            (local.set $i (i32.const 0))
            (loop $s
              (local.set $h (i64.add (i64.mul (local.get $h) (i64.const 1099511628211)) (i64.load (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 8)))
              (br_if $s (i32.lt_u (local.get $i) (i32.add (local.get $mask) (i32.const 4)))))
            (call $done (local.get $h)))
        )
        """.Replace("GROW", grow ? "(drop (memory.grow (i32.const 64))) (local.set $mask (i32.const 0x7FFFFC))" : "", StringComparison.Ordinal);
}

/// <summary>
/// A stream that passes everything to <see cref="Inner"/> (and owns it); test doubles override the few members
/// they change.
/// </summary>
public abstract class PassThroughStream(Stream inner) : Stream
{
    protected Stream Inner { get; } = inner;

    public override bool CanRead => Inner.CanRead;
    public override bool CanSeek => false;
    public override bool CanWrite => Inner.CanWrite;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => Inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => Inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => Inner.Read(buffer, offset, count);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => Inner.ReadAsync(buffer, cancellationToken);
    public override void Write(byte[] buffer, int offset, int count) => Inner.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => Inner.WriteAsync(buffer, cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) Inner.Dispose();
        base.Dispose(disposing);
    }
}
