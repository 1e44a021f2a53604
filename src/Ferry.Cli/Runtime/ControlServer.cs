using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;

namespace Ferry.Cli.Runtime;

/// <summary>One connection to the control socket: the handler answers with one or more lines.</summary>
internal sealed class ControlConnection(NetworkStream stream)
{
    private readonly SemaphoreSlim writeLock = new(1, 1);

    /// <summary>Writes one line; false if the peer has gone (callers carry on regardless).</summary>
    public async Task<bool> SendAsync(string line)
    {
        await writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"), cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            return false;
        }
        finally
        {
            writeLock.Release();
        }
    }

    public Task<bool> ReplyAsync(ControlReply reply) => SendAsync(AgentJson.Line(reply, AgentJson.Default.ControlReply));

    public Task<bool> EventAsync(MigrationEvent ev) => SendAsync(AgentJson.Line(ev, AgentJson.Default.MigrationEvent));
}

/// <summary>
/// The runtime's control socket (control.sock in the workload directory): newline-delimited JSON requests
/// from the agent. A connection that breaks (the agent restarted) never disturbs the runtime.
/// </summary>
internal sealed class ControlServer : IDisposable
{
    private readonly Socket listener;
    private readonly string path;
    private readonly Func<ControlRequest, ControlConnection, Task> handler;

    public ControlServer(string path, Func<ControlRequest, ControlConnection, Task> handler)
    {
        this.path = path;
        this.handler = handler;
        File.Delete(path);
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(16);
        _ = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket s;
            try
            {
                s = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(s));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var connection = new ControlConnection(stream);
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0) continue;
                ControlRequest? request;
                try
                {
                    request = JsonSerializer.Deserialize(line, AgentJson.Default.ControlRequest);
                }
                catch (JsonException e)
                {
                    await connection.ReplyAsync(new ControlReply { Ok = false, Error = "malformed request: " + e.Message }).ConfigureAwait(false);
                    continue;
                }
                if (request is null) continue;
                await handler(request, connection).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // The agent went away; nothing to do.
        }
    }

    public void Dispose()
    {
        listener.Dispose();
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
