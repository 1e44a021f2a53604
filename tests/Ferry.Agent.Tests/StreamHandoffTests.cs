using System.Net;
using System.Net.Sockets;
using System.Text;
using Ferry.Agent.Streams;
using Ferry.Agent.Tests.Support;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Agent.Tests;

/// <summary>
/// The agent's stream hand-off: a migration stream request is recognised from its first bytes, answered with 101,
/// and the connection itself is passed to the incoming runtime; every other connection reaches Kestrel intact.
/// </summary>
public sealed class StreamHandoffTests
{
    private const string Upgrade = "Connection: Upgrade\r\nUpgrade: ferry-migration/1\r\n\r\n";

    [Theory]
    [InlineData("GET /v1/migrations/abc/streams?index=2 HTTP/1.1\r\nHost: h:1\r\n" + Upgrade, StreamRequestVerdict.Stream)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.1\r\nconnection: keep-alive, upgrade\r\nupgrade: FERRY-MIGRATION/1\r\n\r\n", StreamRequestVerdict.Stream)]
    [InlineData("GET /v1/migr", StreamRequestVerdict.Incomplete)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.1\r\nHost: h\r\n", StreamRequestVerdict.Incomplete)]
    [InlineData("GET /v1/agent HTTP/1.1\r\nHost: h\r\n\r\n", StreamRequestVerdict.Other)]
    [InlineData("POST /v1/migrations HTTP/1.1\r\n\r\n", StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/abc HTTP/1.1\r\n" + Upgrade, StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/streams HTTP/1.1\r\n" + Upgrade, StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/a/b/streams HTTP/1.1\r\n" + Upgrade, StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.0\r\n" + Upgrade, StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.1\r\nHost: h\r\n\r\n", StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", StreamRequestVerdict.Other)]
    [InlineData("GET /v1/migrations/abc/streams HTTP/1.1\r\nno colon here\r\n" + Upgrade, StreamRequestVerdict.Other)]
    public void Only_a_complete_well_formed_stream_request_is_taken(string head, StreamRequestVerdict expected)
    {
        var verdict = StreamRequestHead.Classify(Encoding.ASCII.GetBytes(head), out var id, out var length);
        Assert.Equal(expected, verdict);
        if (expected == StreamRequestVerdict.Stream)
        {
            Assert.Equal("abc", id);
            Assert.Equal(head.Length, length);
        }
    }

    [Fact]
    public void A_head_longer_than_the_limit_is_left_to_Kestrel()
    {
        var head = "GET /v1/migrations/abc/streams HTTP/1.1\r\nX-Padding: " + new string('x', StreamRequestHead.MaxLength) + "\r\n" + Upgrade;
        Assert.Equal(StreamRequestVerdict.Other, StreamRequestHead.Classify(Encoding.ASCII.GetBytes(head), out _, out _));
        Assert.Equal(StreamRequestVerdict.Other, StreamRequestHead.Classify(Encoding.ASCII.GetBytes(head)[..StreamRequestHead.MaxLength], out _, out _));
    }

    [Fact]
    public async Task A_stream_is_handed_to_its_runtime_and_carries_bytes_both_ways_directly()
    {
        await using var fixture = await Fixture.StartAsync();
        using var client = await fixture.ConnectAsync();
        var head = $"GET /v1/migrations/{fixture.MigrationId}/streams?index=0 HTTP/1.1\r\nHost: x\r\n{Upgrade}";
        // In two writes: a head may arrive in pieces.
        await client.SendAsync(Encoding.ASCII.GetBytes(head[..25]));
        await client.SendAsync(Encoding.ASCII.GetBytes(head[25..]));
        await using var runtimeSide = await StreamHandoff.AcceptAsync(fixture.DataSocket, TestTimeout());
        Assert.StartsWith("HTTP/1.1 101 Switching Protocols\r\n", await ReadHeadAsync(client), StringComparison.Ordinal);

        // The runtime holds the TCP connection itself, not a Unix connection to the agent.
        var socket = Assert.IsType<NetworkStream>(runtimeSide).Socket;
        Assert.Equal(ProtocolType.Tcp, socket.ProtocolType);
        Assert.Equal(((IPEndPoint)client.LocalEndPoint!).Port, ((IPEndPoint)socket.RemoteEndPoint!).Port);

        var up = new byte[300_000];
        Random.Shared.NextBytes(up);
        var sending = client.SendAsync(up);
        var got = new byte[up.Length];
        await runtimeSide.ReadExactlyAsync(got, TestTimeout());
        await sending;
        Assert.Equal(up, got);
        await runtimeSide.WriteAsync("pong"u8.ToArray());
        var back = new byte[4];
        for (var n = 0; n < 4;) n += await client.ReceiveAsync(back.AsMemory(n));
        Assert.Equal("pong"u8.ToArray(), back);
        // Nothing went to Kestrel: the first connection it gets is the next one.
        using var next = await fixture.ConnectAsync();
        await next.SendAsync("GET /v1/agent HTTP/1.1\r\n\r\n"u8.ToArray());
        await using var context = await fixture.Listener.AcceptAsync(TestTimeout());
        Assert.Equal(((IPEndPoint)next.LocalEndPoint!).Port, ((IPEndPoint)context!.RemoteEndPoint!).Port);
    }

    [Theory]
    [InlineData("GET /v1/agent HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /v1/migrations/not-waiting-here/streams HTTP/1.1\r\nHost: x\r\n" + Upgrade)]
    [InlineData("GET /v1/migrations/MIGRATION/streams HTTP/1.1\r\nHost: x\r\n\r\n")]
    public async Task Every_other_connection_reaches_Kestrel_with_nothing_consumed(string request)
    {
        await using var fixture = await Fixture.StartAsync();
        request = request.Replace("MIGRATION", fixture.MigrationId, StringComparison.Ordinal);
        using var client = await fixture.ConnectAsync();
        await client.SendAsync(Encoding.ASCII.GetBytes(request));
        var context = await fixture.Listener.AcceptAsync(TestTimeout());
        Assert.NotNull(context);
        await using (context)
        {
            var received = new List<byte>();
            while (received.Count < request.Length)
            {
                var read = await context.Transport.Input.ReadAsync(TestTimeout());
                foreach (var segment in read.Buffer) received.AddRange(segment.ToArray());
                context.Transport.Input.AdvanceTo(read.Buffer.End);
            }
            Assert.Equal(request, Encoding.ASCII.GetString([.. received]));
        }
    }

    [Fact]
    public async Task A_runtime_refuses_a_first_byte_that_announces_no_stream()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ferry-handoff-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(4);
        try
        {
            using (var liar = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await liar.ConnectAsync(new UnixDomainSocketEndPoint(path));
                await liar.SendAsync(new[] { StreamHandoff.HandedOver }); // the byte, but no descriptor with it
                var e = await Assert.ThrowsAsync<IOException>(() => StreamHandoff.AcceptAsync(listener, TestTimeout()));
                Assert.Contains("passed no connection", e.Message, StringComparison.Ordinal);
            }
            using (var other = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await other.ConnectAsync(new UnixDomainSocketEndPoint(path));
                await other.SendAsync("G"u8.ToArray());
                var e = await Assert.ThrowsAsync<IOException>(() => StreamHandoff.AcceptAsync(listener, TestTimeout()));
                Assert.Contains("0x47", e.Message, StringComparison.Ordinal);
            }
            using (var relay = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await relay.ConnectAsync(new UnixDomainSocketEndPoint(path));
                await relay.SendAsync(new[] { StreamHandoff.Relayed, (byte)'x' });
                await using var stream = await StreamHandoff.AcceptAsync(listener, TestTimeout());
                Assert.Equal('x', stream.ReadByte());
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static CancellationToken TestTimeout() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;

    private static async Task<string> ReadHeadAsync(Socket socket)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            Assert.Equal(1, await socket.ReceiveAsync(one, TestTimeout()));
            head.Append((char)one[0]);
        }
        return head.ToString();
    }

    /// <summary>A hand-off listener on a loopback port whose one waiting migration's data socket is a temporary Unix socket.</summary>
    private sealed class Fixture : IAsyncDisposable
    {
        private Fixture(IConnectionListener listener, Socket dataSocket, string path)
        {
            Listener = listener;
            DataSocket = dataSocket;
            this.path = path;
        }

        private readonly string path;

        public string MigrationId { get; } = Guid.NewGuid().ToString();
        public IConnectionListener Listener { get; }
        public Socket DataSocket { get; }

        public static async Task<Fixture> StartAsync()
        {
            var path = Path.Combine(Path.GetTempPath(), $"ferry-handoff-{Guid.NewGuid():N}.sock");
            var dataSocket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            dataSocket.Bind(new UnixDomainSocketEndPoint(path));
            dataSocket.Listen(4);
            Fixture? fixture = null;
            var factory = new HandoffListenerFactory(id => id == fixture?.MigrationId ? path : null, new SocketConnectionFactoryOptions(), NullLogger.Instance, 256 * 1024);
            var listener = await factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
            fixture = new Fixture(listener, dataSocket, path);
            return fixture;
        }

        public async Task<Socket> ConnectAsync()
        {
            var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(Listener.EndPoint);
            return client;
        }

        public async ValueTask DisposeAsync()
        {
            await Listener.DisposeAsync();
            DataSocket.Dispose();
            File.Delete(path);
        }
    }
}

/// <summary>Agents started with <c>--stream-handoff false</c> relay the streams' bytes, and migrations work the same.</summary>
public sealed class RelayedStreamMigrationTests
{
    [Fact]
    public async Task A_migration_through_relaying_agents_keeps_the_checksum()
    {
        using var pair = AgentPair.Relaying();
        var (id, migrate) = await pair.MigrateMidRunAsync("btree", ["--mem", "16M", "--seconds", "10", "--progress", "0.2"], ["--strategy", "precopy"]);
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.Contains("5 migration streams connected: 0 handed over by the agent, 5 relayed", pair.RuntimeLog(pair.B, id), StringComparison.Ordinal);
        var output = await pair.WaitForEndAsync(pair.B, id);
        Assert.Equal(Repo.NativeReference("btree", "16M", Repo.OpsOf(output)), output);
    }
}
