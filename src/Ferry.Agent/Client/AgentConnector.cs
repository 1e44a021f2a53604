using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Ferry.Agent.Api;
using Ferry.Agent.Testing;
using Ferry.Migration.Protocol;
using Ferry.Migration.Transport;

namespace Ferry.Agent.Client;

/// <summary>
/// Opens a migration's streams through the destination agent: asks it to prepare (it starts a runtime in
/// incoming mode), then opens each stream as an HTTP/1.1 request to /v1/migrations/ID/streams upgraded to
/// ferry-migration/1, which the agent pipes to that runtime. Every byte goes to the agent's URL, so the
/// migration can be routed like any HTTP service.
/// </summary>
public sealed class AgentConnector : IMigrationConnector
{
    private readonly Uri destination;
    private readonly PrepareMigrationRequest template;
    private readonly Func<string, Guid, string>? hook;
    private readonly List<Socket> sockets = [];

    /// <param name="hook">Test-only: called at phases "setup", "state" and "commit" (see <see cref="TestHook"/>); returns the action.</param>
    public AgentConnector(Uri destination, string workloadId, string name, string? from, Func<string, Guid, string>? hook = null)
    {
        this.destination = destination;
        template = new PrepareMigrationRequest { MigrationId = "", WorkloadId = workloadId, Name = name, Streams = 0, From = from };
        this.hook = hook;
    }

    /// <summary>The migration id, once the destination has been asked to prepare.</summary>
    public Guid? MigrationId { get; private set; }

    /// <summary>Diagnostics: called with each control frame written ("> State") or read ("< Ready").</summary>
    public Action<string>? Trace { get; init; }

    /// <summary>Awaited once the streams are open, before they are handed to the migration (e.g. to finish a warm-up).</summary>
    public Func<Task>? BeforeTransfer { get; init; }

    /// <summary>Called with the migration id once the destination is prepared.</summary>
    public Action<Guid>? Prepared { get; init; }

    /// <summary>True once the Commit message has been written to the control stream.</summary>
    public bool CommitSent { get; private set; }

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>SO_SNDBUF/SO_RCVBUF of each stream's socket.</summary>
    public static int SocketBufferBytes => AgentServer.StreamBufferBytes;

    public async Task<Stream[]> ConnectAsync(Guid migrationId, int streams, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(ConnectTimeout);
        Trace?.Invoke("preparing the destination");
        using (var agent = new AgentClient(destination, ConnectTimeout))
        {
            await agent.PrepareAsync(template with { MigrationId = migrationId.ToString(), Streams = streams }, cts.Token).ConfigureAwait(false);
        }
        MigrationId = migrationId;
        Trace?.Invoke("destination prepared");
        Prepared?.Invoke(migrationId);
        var opening = new Task<Stream>[streams];
        for (var i = 0; i < streams; i++) opening[i] = OpenAsync(migrationId, i, cts.Token);
        try
        {
            await Task.WhenAll(opening).ConfigureAwait(false);
        }
        catch
        {
            Cut();
            throw;
        }
        var result = opening.Select(t => t.Result).ToArray();
        result[0] = new ControlObserver(result[0], this, migrationId);
        Trace?.Invoke("streams open");
        if (BeforeTransfer is { } before) await before().ConfigureAwait(false);
        Apply(hook?.Invoke("setup", migrationId));
        return result;
    }

    private void Apply(string? action)
    {
        if (action == TestHook.Cut) Cut();
        else if (action == TestHook.Exit) TestHook.ExitNow();
    }

    /// <summary>Closes every stream abruptly (RST): what a cut connection looks like to both ends.</summary>
    public void Cut()
    {
        lock (sockets)
        {
            foreach (var s in sockets)
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0);
                    s.Close();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
            }
        }
    }

    private async Task<Stream> OpenAsync(Guid migrationId, int index, CancellationToken ct)
    {
        // Small kernel buffers keep little data in flight: when the guest is frozen, what was sent before must
        // still drain to the destination, and that wait counts as downtime. Loopback and data-center RTTs
        // need no more than this per stream for full speed.
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, SendBufferSize = SocketBufferBytes, ReceiveBufferSize = SocketBufferBytes };
        lock (sockets) sockets.Add(socket);
        try
        {
            await socket.ConnectAsync(destination.Host, destination.Port, ct).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new IOException($"cannot open migration stream {index} to the destination agent at {destination}: {e.Message}", e);
        }
        var stream = new NetworkStream(socket, ownsSocket: true);
        await stream.WriteAsync(UpgradeRequest(destination, $"/v1/migrations/{migrationId}/streams?index={index}"), ct).ConfigureAwait(false);
        var (status, headers) = await ReadHeadAsync(stream, ct).ConfigureAwait(false);
        if (status == 101) return stream;
        var message = $"HTTP {status}";
        if (headers.TryGetValue("content-length", out var lengthText) && int.TryParse(lengthText, CultureInfo.InvariantCulture, out var length) && length is > 0 and < 65536)
        {
            var body = new byte[length];
            await stream.ReadExactlyAsync(body, ct).ConfigureAwait(false);
            message += ": " + Encoding.UTF8.GetString(body);
        }
        await stream.DisposeAsync().ConfigureAwait(false);
        throw new IOException($"the destination agent at {destination} refused migration stream {index}: {message}");
    }

    /// <summary>The HTTP/1.1 request that asks the agent at <paramref name="agent"/> to upgrade <paramref name="path"/> to a migration stream.</summary>
    internal static byte[] UpgradeRequest(Uri agent, string path) =>
        Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {agent.Authority}\r\nConnection: Upgrade\r\nUpgrade: {AgentServer.UpgradeProtocol}\r\n\r\n");

    /// <summary>Reads the response head byte by byte, so nothing after it (the raw stream) is consumed.</summary>
    internal static async Task<(int Status, Dictionary<string, string> Headers)> ReadHeadAsync(Stream stream, CancellationToken ct)
    {
        var head = new List<byte>(256);
        var one = new byte[1];
        while (head.Count < 4 || head[^4] != '\r' || head[^3] != '\n' || head[^2] != '\r' || head[^1] != '\n')
        {
            if (await stream.ReadAsync(one, ct).ConfigureAwait(false) == 0) throw new IOException("the destination agent closed the connection during the upgrade");
            head.Add(one[0]);
            if (head.Count > 16384) throw new IOException("the destination agent's answer to the upgrade is too long");
        }
        var lines = Encoding.ASCII.GetString([.. head]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var parts = lines[0].Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var status))
        {
            throw new IOException($"the destination agent answered the upgrade with '{lines[0]}'");
        }
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
        }
        return (status, headers);
    }

    /// <summary>
    /// Wraps the control stream to see which frames have gone out (State, Commit) and come in (SetupAck) —
    /// the phases the test hook reports — and to know when <see cref="CommitSent"/>.
    /// </summary>
    private sealed class ControlObserver : Stream
    {
        private readonly Stream inner;
        private readonly AgentConnector owner;
        private readonly Guid migrationId;
        private readonly FrameParser written;
        private readonly FrameParser read;

        public ControlObserver(Stream inner, AgentConnector owner, Guid migrationId)
        {
            this.inner = inner;
            this.owner = owner;
            this.migrationId = migrationId;
            written = new FrameParser(Written);
            read = new FrameParser(Read);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, count);
            read.Feed(buffer.AsSpan(offset, n));
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await inner.ReadAsync(buffer, ct).ConfigureAwait(false);
            read.Feed(buffer.Span[..n]);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            written.Feed(buffer.AsSpan(offset, count));
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            await inner.WriteAsync(buffer, ct).ConfigureAwait(false);
            written.Feed(buffer.Span);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

        private void Written(MessageType t)
        {
            owner.Trace?.Invoke($"> {t}");
            if (t == MessageType.Commit) owner.CommitSent = true;
            var phase = t switch
            {
                MessageType.State => "state",
                MessageType.Commit => "commit",
                _ => null,
            };
            if (phase is not null && owner.hook is { } h) owner.Apply(h(phase, migrationId));
        }

        private void Read(MessageType t)
        {
            owner.Trace?.Invoke($"< {t}");
            if (t == MessageType.SetupAck && owner.hook is { } h) owner.Apply(h("accepted", migrationId));
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    /// <summary>Follows frame boundaries in a byte stream ([u32 length][u16 type][u16 flags][payload]); reports each complete frame's type.</summary>
    private sealed class FrameParser(Action<MessageType> complete)
    {
        private readonly byte[] header = new byte[FrameStream.HeaderBytes];
        private int headerFill;
        private long payloadLeft;
        private MessageType type;

        public void Feed(ReadOnlySpan<byte> data)
        {
            while (data.Length > 0)
            {
                if (headerFill < header.Length)
                {
                    var n = Math.Min(header.Length - headerFill, data.Length);
                    data[..n].CopyTo(header.AsSpan(headerFill));
                    headerFill += n;
                    data = data[n..];
                    if (headerFill < header.Length) return;
                    payloadLeft = BinaryPrimitives.ReadInt32LittleEndian(header);
                    type = (MessageType)BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(4));
                }
                var take = (int)Math.Min(payloadLeft, data.Length);
                payloadLeft -= take;
                data = data[take..];
                if (payloadLeft == 0)
                {
                    headerFill = 0;
                    complete(type);
                }
            }
        }
    }
}
