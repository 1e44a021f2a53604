using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Ferry.Agent.Testing;

/// <summary>
/// Test-only failure injection. When the environment variable FERRY_TEST_HOOK names a Unix socket, a runtime
/// reports each migration phase it reaches there — one line of JSON {side, phase, workload, migration} — and
/// waits for the answer: "continue", "cut" (close every migration stream abruptly, here) or "exit" (SIGKILL
/// itself, here). The test decides what happens at exactly that point (kill the other runtime, restart an
/// agent, cut the connection) with no sleeps. Unset (always, outside tests), it costs nothing.
///
/// Phases: launch "start" (a new workload is compiled and reported running, its program not started yet);
/// source "setup" (streams connected, nothing sent), "accepted" (the destination acknowledged the
/// setup: the guest is not frozen and none of its memory has been sent yet), "round0" (first batch of the first round),
/// "round1" (first batch of the second pre-copy round), "state" (final state sent, before Ready), "commit"
/// (Commit sent, before the acknowledgement), "postcopy" (first batch pushed after commit);
/// destination "receiving" (streams accepted), "compiled" (the module is compiled and instantiated once, in the
/// background: for pre-copy and hybrid after "accepted", for stop-and-copy and post-copy before it), "ready"
/// (everything checked, before commit) and "running" (the guest started here, before the acknowledgement is sent).
/// </summary>
public sealed class TestHook
{
    public const string SocketVariable = "FERRY_TEST_HOOK";
    public const string Continue = "continue";
    public const string Cut = "cut";
    public const string Exit = "exit";

    private readonly string path;

    private TestHook(string path) => this.path = path;

    public static TestHook? FromEnvironment() =>
        Environment.GetEnvironmentVariable(SocketVariable) is { Length: > 0 } p ? new TestHook(p) : null;

    /// <summary>Reports a phase and returns the test's instruction (bounded: "continue" if the test does not answer in 2 minutes).</summary>
    public string At(string side, string phase, string workloadId, string? migrationId)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 120_000, SendTimeout = 10_000 };
            socket.Connect(new UnixDomainSocketEndPoint(path));
            var line = JsonSerializer.Serialize(new Dictionary<string, string?>
            {
                ["side"] = side,
                ["phase"] = phase,
                ["workload"] = workloadId,
                ["migration"] = migrationId,
                ["pid"] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }) + "\n";
            socket.Send(Encoding.UTF8.GetBytes(line));
            var reply = new List<byte>();
            var one = new byte[1];
            while (socket.Receive(one) == 1 && one[0] != '\n') reply.Add(one[0]);
            var action = Encoding.UTF8.GetString([.. reply]).Trim();
            return action is Cut or Exit ? action : Continue;
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"[ferry-runtime] test hook {path} unreachable at {side} phase {phase}: {e.Message}");
            return Continue;
        }
    }

    /// <summary>Dies at once, as a killed process would: no cleanup, no status written.</summary>
    public static void ExitNow()
    {
        Console.Out.Flush();
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
