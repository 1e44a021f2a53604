using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Agent.Workloads;

namespace Ferry.Agent.Tests;

/// <summary>The agent's relay warm-up: it carries real traffic through the stream relay at start and leaves nothing behind.</summary>
public sealed class RelayWarmupTests
{
    [Fact]
    public async Task The_warm_up_echoes_its_traffic_through_the_relay_and_then_its_stream_is_gone()
    {
        var stateDir = Directory.CreateTempSubdirectory("ferry-relay-test-");
        try
        {
            var options = new AgentOptions { Name = "warm", StateDir = stateDir.FullName, FerryCommand = ["/bin/false"], Standby = false, StreamHandoff = false };
            await using var server = await AgentServer.StartAsync(options, new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
            var result = await server.RelayWarmedUp.WaitAsync(TimeSpan.FromMinutes(1));

            Assert.Null(result.Error);
            Assert.True(result.RoundTrips >= 100, $"{result.RoundTrips} round trips");
            Assert.True(result.Bytes >= 1 << 20, $"{result.Bytes} bytes");
            Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"ferry-relay-{Environment.ProcessId}-*.sock"));

            // After the warm-up, a stream request for an id that is no incoming migration is refused as before.
            var answer = await UpgradeAsync(new Uri(server.Url), "warm-up-" + Guid.NewGuid().ToString("N"));
            Assert.StartsWith("HTTP/1.1 404", answer, StringComparison.Ordinal);
            Assert.Contains("no incoming migration", answer, StringComparison.Ordinal);
        }
        finally
        {
            stateDir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task An_agent_started_without_the_warm_up_says_so()
    {
        var stateDir = Directory.CreateTempSubdirectory("ferry-relay-test-");
        try
        {
            var options = new AgentOptions { Name = "cold", StateDir = stateDir.FullName, FerryCommand = ["/bin/false"], Standby = false, WarmRelay = false, StreamHandoff = false };
            await using var server = await AgentServer.StartAsync(options, new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
            var result = await server.RelayWarmedUp;
            Assert.Equal(0, result.RoundTrips);
            Assert.Equal("not started", result.Error);
        }
        finally
        {
            stateDir.Delete(recursive: true);
        }
    }

    /// <summary>Asks for a migration stream and returns the whole answer (the request also asks the agent to close).</summary>
    private static async Task<string> UpgradeAsync(Uri agent, string id)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(agent.Host, agent.Port);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var request = $"GET /v1/migrations/{id}/streams HTTP/1.1\r\nHost: {agent.Authority}\r\nConnection: Upgrade, close\r\nUpgrade: {AgentServer.UpgradeProtocol}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromMinutes(1));
    }
}
