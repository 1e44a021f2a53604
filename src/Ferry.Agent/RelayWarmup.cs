using System.Diagnostics;
using System.Net.Sockets;
using Ferry.Agent.Client;

namespace Ferry.Agent;

/// <summary>What the relay warm-up did: round trips through the agent's own stream relay, bytes echoed, time taken, or why it failed.</summary>
public sealed record RelayWarmupResult(int RoundTrips, long Bytes, TimeSpan Elapsed, string? Error);

/// <summary>
/// Sends traffic through this agent's own migration-stream relay (an upgraded HTTP connection to itself, piped to an
/// echo socket in this process) once, right after the agent starts listening.
/// <para>
/// Why: a post-copy migration sends nothing through the destination agent's relay before the guest is frozen (the
/// pages come after the switch-over), so without this, the relay's code — Kestrel's upgraded-connection stream, the
/// socket copy loops in <see cref="AgentServer"/> — first gets busy inside the switch-over. The .NET JIT then
/// recompiles those methods at a higher tier there, in the background, competing for the host's cores with the
/// destination runtime restoring the frozen guest (docs/benchmarks.md, "what a switch-over waits for").
/// </para>
/// <para>
/// Tiered compilation promotes a method after about 30 calls counted once a 100 ms quiet period has passed (and,
/// for precompiled code with dynamic PGO, in two such steps), so the traffic comes in several bursts with a pause
/// between them, not all at once. Bounded (a fixed number of round trips, one time limit); a failure is reported,
/// never thrown, and changes nothing but the agent's first migration's speed.
/// </para>
/// </summary>
public sealed class RelayWarmup
{
    /// <summary>Bursts of round trips, each after a pause longer than the JIT's call-counting delay.</summary>
    private const int Bursts = 4;
    private const int RoundTripsPerBurst = 48;
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>Message sizes like a migration's: control frames, a small batch, a full relay buffer, more than one.</summary>
    private static readonly int[] Sizes = [24, 8 * 1024, 64 * 1024, 192 * 1024];

    private RelayWarmup(string migrationId, string socketPath)
    {
        MigrationId = migrationId;
        SocketPath = socketPath;
    }

    /// <summary>The stream id the warm-up connects to (random, not a migration's: no outside request can guess it).</summary>
    public string MigrationId { get; }

    /// <summary>The echo socket the relay pipes the warm-up stream to.</summary>
    public string SocketPath { get; }

    /// <summary>Creates the warm-up's echo socket (in the temporary directory; short path, unique name).</summary>
    public static RelayWarmup Create() =>
        new("warm-up-" + Guid.NewGuid().ToString("N"), Path.Combine(Path.GetTempPath(), $"ferry-relay-{Environment.ProcessId}-{Guid.NewGuid():N}.sock"));

    /// <summary>Runs the warm-up against the agent at <paramref name="agent"/>, whose relay must send this warm-up's id to <see cref="SocketPath"/>.</summary>
    public async Task<RelayWarmupResult> RunAsync(Uri agent, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var roundTrips = 0;
        long bytes = 0;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(Limit);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
            listener.Listen(1);
            var echo = EchoOnceAsync(listener, cts.Token);
            try
            {
                await using (var stream = await OpenAsync(agent, cts.Token).ConfigureAwait(false))
                {
                    var sent = new byte[Sizes[^1]];
                    var back = new byte[Sizes[^1]];
                    Random.Shared.NextBytes(sent);
                    for (var burst = 0; burst < Bursts; burst++)
                    {
                        if (burst > 0) await Task.Delay(Pause, cts.Token).ConfigureAwait(false);
                        for (var i = 0; i < RoundTripsPerBurst; i++)
                        {
                            var n = Sizes[i % Sizes.Length];
                            await stream.WriteAsync(sent.AsMemory(0, n), cts.Token).ConfigureAwait(false);
                            await stream.ReadExactlyAsync(back.AsMemory(0, n), cts.Token).ConfigureAwait(false);
                            if (!back.AsSpan(0, n).SequenceEqual(sent.AsSpan(0, n))) throw new IOException("the relay changed the bytes it carried");
                            roundTrips++;
                            bytes += n;
                        }
                    }
                }
                await echo.ConfigureAwait(false);
            }
            catch
            {
                // Whatever ended the client also ends the echo (the relay closes its side); observe it.
                listener.Dispose();
                try
                {
                    await echo.ConfigureAwait(false);
                }
                catch (Exception)
                {
                }
                throw;
            }
            return new RelayWarmupResult(roundTrips, bytes, clock.Elapsed, null);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            var why = e is OperationCanceledException && !ct.IsCancellationRequested ? $"no answer within {Limit.TotalSeconds:0} s" : e.Message;
            return new RelayWarmupResult(roundTrips, bytes, clock.Elapsed, why);
        }
        finally
        {
            listener.Dispose();
            try
            {
                File.Delete(SocketPath);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Opens a migration stream to this warm-up's id the way a source does (HTTP/1.1 upgrade to ferry-migration/1).</summary>
    private async Task<Stream> OpenAsync(Uri agent, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(agent.Host, agent.Port, ct).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            await stream.WriteAsync(AgentConnector.UpgradeRequest(agent, $"/v1/migrations/{MigrationId}/streams"), ct).ConfigureAwait(false);
            var (status, _) = await AgentConnector.ReadHeadAsync(stream, ct).ConfigureAwait(false);
            if (status != 101) throw new IOException($"the agent answered the warm-up's upgrade with HTTP {status}");
            return stream;
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Accepts the relay's one connection and sends back everything it reads until the relay closes it.</summary>
    private static async Task EchoOnceAsync(Socket listener, CancellationToken ct)
    {
        await using var peer = await Streams.StreamHandoff.AcceptAsync(listener, ct).ConfigureAwait(false);
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await peer.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            await peer.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
        }
    }
}
