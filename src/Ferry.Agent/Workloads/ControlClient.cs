using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;

namespace Ferry.Agent.Workloads;

/// <summary>
/// The agent's side of a runtime's control socket: newline-delimited JSON, one request per line, answered by
/// one reply line (status, stop) or by a stream of <see cref="MigrationEvent"/> lines ending with "result" (migrate).
/// </summary>
public sealed class ControlClient : IAsyncDisposable
{
    private readonly Socket socket;
    private readonly NetworkStream stream;
    private readonly StreamReader reader;

    private ControlClient(Socket socket)
    {
        this.socket = socket;
        stream = new NetworkStream(socket, ownsSocket: true);
        reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 4096, leaveOpen: true);
    }

    public static async Task<ControlClient> ConnectAsync(string path, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
            return new ControlClient(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public async Task SendAsync(ControlRequest request, CancellationToken ct)
    {
        var line = AgentJson.Line(request, AgentJson.Default.ControlRequest) + "\n";
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line), ct).ConfigureAwait(false);
    }

    /// <summary>The next line, or null when the runtime closed the connection.</summary>
    public async Task<string?> ReadLineAsync(CancellationToken ct) => await reader.ReadLineAsync(ct).ConfigureAwait(false);

    /// <summary>One request, one reply, bounded by <paramref name="timeout"/>.</summary>
    public static async Task<ControlReply> RequestAsync(string path, ControlRequest request, TimeSpan timeout, CancellationToken ct = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        await using var client = await ConnectAsync(path, cts.Token).ConfigureAwait(false);
        await client.SendAsync(request, cts.Token).ConfigureAwait(false);
        var line = await client.ReadLineAsync(cts.Token).ConfigureAwait(false)
            ?? throw new IOException("the runtime closed its control socket without replying");
        try
        {
            return JsonSerializer.Deserialize(line, AgentJson.Default.ControlReply) ?? throw new IOException("empty reply from the runtime");
        }
        catch (JsonException e)
        {
            throw new IOException("unreadable reply from the runtime: " + e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        reader.Dispose();
        await stream.DisposeAsync().ConfigureAwait(false);
        socket.Dispose();
    }
}
