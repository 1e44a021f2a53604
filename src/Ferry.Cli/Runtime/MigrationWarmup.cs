using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Ferry.Enclave.Confidential;
using Ferry.Enclave.Migration;
using Ferry.Enclave.Runtime;
using Ferry.Migration.Protocol;
using Ferry.Migration.Strategies;
using Ferry.Migration.Transport;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Cli.Runtime;

/// <summary>
/// Runs a tiny migration inside this process (a 128 KiB WASI guest, over loopback TCP, pre-copy then
/// post-copy, with compiled tracking and, where the kernel offers it, with userfaultfd) so that the code on a real
/// migration's critical path is already compiled by the JIT when the real guest is frozen. A fresh runtime process
/// otherwise spends most of its first downtime compiling .NET methods (measured: 89 ms cold against 13 ms warm for
/// the same 64 MiB post-copy).
/// The destination runtime starts it as soon as it is up (it overlaps the transfer); the source starts it
/// with the migration request (it overlaps preparing the destination) and waits for it before any page moves.
/// </summary>
public static class MigrationWarmup
{
    /// <summary>
    /// A small guest shaped like a compiled C program, so that a freeze and a restore take the paths a real one does:
    /// <code>
    /// (module (import "wasi_snapshot_preview1" "sched_yield" …) (memory 2)
    ///   (global $sp (mut i32)) (global $sum (mut i64)) (global $avg (mut f64)) (table 1 funcref) (elem $step)
    ///   (func $step (param i32 i64 f64) (result i64) (local i64 f64)
    ///     store $i at ($i·4100) mod 128 KiB; set $sum and $avg; sched_yield; return $acc + $i)
    ///   (func (export "_start") (local $i i32) (local $acc i64) (local $x f64)
    ///     (loop: $sp -= 16; $acc = call_indirect $step ($i, $acc, $x); $x = f64($acc); $sp += 16; $i++; br)))
    /// </code>
    /// Writes pages, calls WASI, never ends; a freeze finds two frames holding i32, i64 and f64 values, globals of the
    /// three types and a function table (without them the first real freeze compiled the state capture of globals and
    /// tables, and the destination their restore, inside the downtime: JIT listings of kvstore at 3 GiB).
    /// Source: migration-warmup.wat beside this file (`wat2wasm` gives these bytes; a test checks they match).
    /// </summary>
    private static readonly byte[] Module =
    [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x03, 0x60, 0x03, 0x7f, 0x7e, 0x7c, 0x01, 0x7e, 0x60, 0x00,
        0x01, 0x7f, 0x60, 0x00, 0x00, 0x02, 0x26, 0x01, 0x16, 0x77, 0x61, 0x73, 0x69, 0x5f, 0x73, 0x6e, 0x61, 0x70, 0x73, 0x68,
        0x6f, 0x74, 0x5f, 0x70, 0x72, 0x65, 0x76, 0x69, 0x65, 0x77, 0x31, 0x0b, 0x73, 0x63, 0x68, 0x65, 0x64, 0x5f, 0x79, 0x69,
        0x65, 0x6c, 0x64, 0x00, 0x01, 0x03, 0x03, 0x02, 0x00, 0x02, 0x04, 0x04, 0x01, 0x70, 0x00, 0x01, 0x05, 0x03, 0x01, 0x00,
        0x02, 0x06, 0x19, 0x03, 0x7f, 0x01, 0x41, 0x80, 0x80, 0x04, 0x0b, 0x7e, 0x01, 0x42, 0x00, 0x0b, 0x7c, 0x01, 0x44, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x07, 0x0a, 0x01, 0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x02,
        0x09, 0x07, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x01, 0x0a, 0x70, 0x02, 0x39, 0x02, 0x01, 0x7e, 0x01, 0x7c, 0x20, 0x00,
        0x41, 0x84, 0x20, 0x6c, 0x41, 0xfc, 0xff, 0x07, 0x71, 0x20, 0x00, 0x36, 0x02, 0x00, 0x20, 0x01, 0x20, 0x00, 0xad, 0x7c,
        0x21, 0x03, 0x20, 0x02, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, 0xa0, 0x21, 0x04, 0x20, 0x03, 0x24, 0x01,
        0x20, 0x04, 0x24, 0x02, 0x10, 0x00, 0x1a, 0x20, 0x03, 0x0b, 0x34, 0x03, 0x01, 0x7f, 0x01, 0x7e, 0x01, 0x7c, 0x03, 0x40,
        0x23, 0x00, 0x41, 0x10, 0x6b, 0x24, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0x41, 0x00, 0x11, 0x00, 0x00, 0x21, 0x01,
        0x20, 0x01, 0xba, 0x21, 0x02, 0x23, 0x00, 0x41, 0x10, 0x6a, 0x24, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, 0x0c,
        0x00, 0x0b, 0x0b,
    ];

    private static readonly Lazy<Task<TimeSpan>> Once = new(() => Task.Run(RunAllAsync));
    private static readonly Lazy<Task<TimeSpan>> SealedOnce = new(() => Task.Run(RunSealedAsync));

    /// <summary>The warm-up's guest module (for tests: it must be what its .wat source assembles to).</summary>
    public static ReadOnlyMemory<byte> GuestModule => Module;

    /// <summary>Why the last warm-up of this process failed (it is harmless, but it warmed nothing up), or null.</summary>
    public static string? Failure { get; private set; }

    /// <summary>Starts the warm-up (once per process); completes with how long it took, never fails.</summary>
    public static Task<TimeSpan> Start() => Once.Value;

    /// <summary>
    /// For confidential workloads: the plain warm-up, then one sealed pre-copy migration (attestation handshake,
    /// AES-GCM sealing and opening, epoch admission, the authenticated commit) between two runtimes of a throwaway
    /// software platform in a temporary directory — nothing of this host's platform key, trust file or epoch store
    /// is touched. Without it the first confidential migration compiles the sealing path while the guest is frozen.
    /// </summary>
    public static Task<TimeSpan> Start(bool confidential) => confidential ? SealedOnce.Value : Once.Value;

    private static async Task<TimeSpan> RunSealedAsync()
    {
        var plain = await Start().ConfigureAwait(false);
        var sw = Stopwatch.StartNew();
        DirectoryInfo? dir = null;
        try
        {
            dir = Directory.CreateTempSubdirectory("ferry-warmup-");
            using (var tee = SoftwareTeeBackend.OpenOrCreate(dir.FullName))
            {
                TrustStore.Create([tee.TrustEntry("warm-up")]).Save(Path.Combine(dir.FullName, "trust.json"));
            }
            using var host = ConfidentialHost.At(dir.FullName, Path.Combine(dir.FullName, "trust.json"), "warm-up");
            await MigrateAsync(Strategy.PreCopy, host).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Failure = $"{e.GetType().Name}: {e.Message}";
            Console.Error.WriteLine($"[ferry-runtime] sealed migration warm-up failed (harmless): {Failure}");
        }
        finally
        {
            try
            {
                dir?.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
        return plain + sw.Elapsed;
    }

    private static async Task<TimeSpan> RunAllAsync()
    {
        var sw = Stopwatch.StartNew();
        try
        {
            await MigrateAsync(Strategy.PreCopy).ConfigureAwait(false);
            await MigrateAsync(Strategy.PostCopy).ConfigureAwait(false);
            // The kernel's paths (PAGEMAP_SCAN collection, userfaultfd registration, the missing-page server and its
            // P/Invoke stubs) are other code: without this, a kernel post-copy's destination compiled them while the
            // guest was frozen (FERRY_TRACE's jit= counts, docs/benchmarks.md).
            var support = Ferry.Enclave.Tracking.UserfaultfdSupport.Current;
            if (support.DirtyTrackingUnavailableReason is null) await MigrateAsync(Strategy.PreCopy, kernel: true).ConfigureAwait(false);
            if (support.DirtyTrackingUnavailableReason is null && support.MissingPagesUnavailableReason is null)
            {
                await MigrateAsync(Strategy.PostCopy, kernel: true).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // Only a missed optimisation: the real migration compiles what it needs as it goes.
            Failure = $"{e.GetType().Name}: {e.Message}";
            Console.Error.WriteLine($"[ferry-runtime] migration warm-up failed (harmless): {Failure}");
        }
        return sw.Elapsed;
    }

    private static async Task MigrateAsync(Strategy strategy, ConfidentialHost? host = null, bool kernel = false)
    {
        var tracking = kernel ? TrackingMethod.Kernel : TrackingMethod.Compiler;
        var module = Wasm.Binary.ModuleDecoder.Decode(Module);
        Wasm.Validation.ModuleValidator.Validate(module);
        var quiet = new WasiOptions { Args = ["warmup"], Stdin = WasiStdio.FromStream(Stream.Null), Stdout = WasiStdio.FromStream(Stream.Null), Stderr = WasiStdio.FromStream(Stream.Null) };
        using var program = GuestProgram.Create(module, WasiEnvironment.Create(quiet), CompileOptions.Default with { DirtyTracking = true }, InstanceOptions.Default);
        program.Start();
        using var listener = new TcpStreamListener(IPAddress.Loopback);
        var options = new MigrationOptions { Strategy = strategy, Streams = 2, PeerTimeout = TimeSpan.FromSeconds(20), FreezeTimeout = TimeSpan.FromSeconds(5) };
        // Sealed: both halves of the handshake and the epoch checks, as in a confidential workload's runtimes.
        var measurement = SHA256.HashData(Module);
        SessionRecordProtector? sealer = null, opener = null;
        var destination = new DestinationMigration((setup, bytes) =>
            {
                IRecordProtector protector = new PlainRecordProtector();
                if (host is not null) protector = opener = new SessionRecordProtector(setup.Streams);
                var postCopy = setup.Strategy is Strategy.PostCopy or Strategy.Hybrid;
                return new EnclaveDestination(
                    Wasm.Binary.ModuleDecoder.Decode(bytes.ToArray()), WorkloadRuntime.CompileForIncoming(postCopy, kernel && postCopy),
                    InstanceOptions.Default, state => GuestEnvironments.Restore(state, quiet), protector, setup.Streams,
                    kernelPostCopy: kernel && postCopy, admission: host is null ? null : new EpochAdmission(host.Epochs, measurement));
            },
            null, TimeSpan.FromSeconds(20),
            host is null ? null : (setup, channel, ct) => host.HandshakeAsDestinationAsync(measurement, Guid.Parse(setup.MigrationId), channel, opener!, _ => { }, ct));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var arriving = Task.Run(async () => await destination.RunAsync(await listener.AcceptAsync(options.Streams + 1, cts.Token).ConfigureAwait(false), cts.Token).ConfigureAwait(false));
        IRecordProtector sourceProtector = new PlainRecordProtector();
        if (host is not null)
        {
            sourceProtector = sealer = new SessionRecordProtector(options.Streams + 1);
            options = options with
            {
                Epoch = 2,
                ResumeAfterFailedCommit = false,
                Handshake = (id, channel, ct) => host.HandshakeAsSourceAsync(measurement, id, channel, sealer, _ => { }, ct),
            };
        }
        var source = new SourceMigration(new EnclaveSource(program, sourceProtector, options.Streams + 1)
        {
            Identity = host is null ? [] : WorkloadIdentity.NewInstance(measurement).Encode(),
        },
            PageTrackers.For(tracking, program), options);
        var setup = new WorkloadSetup
        {
            MigrationId = "",
            WorkloadId = "warmup",
            Name = "warmup",
            ModuleSha256 = Convert.ToHexStringLower(SHA256.HashData(Module)),
            ModuleBytes = Module.Length,
            Strategy = strategy,
            Tracking = tracking,
            Confidential = host is not null,
            Streams = 0,
            MemoryBytes = 0,
        };
        await source.RunAsync(new TcpConnector(listener.Endpoint), setup, Module, cts.Token).ConfigureAwait(false);
        var arrived = await arriving.ConfigureAwait(false);
        await arrived.PostCopy.WaitAsync(cts.Token).ConfigureAwait(false);
        var guest = arrived.Enclave.Program!;
        // A freeze requested while the guest thread is still starting up can be lost (its resume clears the
        // request), so ask again until it takes.
        while (true)
        {
            var frozen = guest.FreezeAsync();
            if (await Task.WhenAny(frozen, Task.Delay(100, cts.Token)).ConfigureAwait(false) == frozen)
            {
                await frozen.ConfigureAwait(false);
                break;
            }
        }
        guest.Retire();
        arrived.Enclave.Dispose();
        sealer?.Dispose();
        opener?.Dispose();
    }
}
