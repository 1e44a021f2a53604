using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Streams;

/// <summary>
/// Kestrel's transport for the agent's port: it accepts every connection itself and peeks at its first bytes. A
/// migration stream request for an incoming runtime waiting on this host is answered here (101) and the connection
/// itself is handed to that runtime (<see cref="StreamHandoff"/>): from then on the source runtime and the destination
/// runtime talk over one TCP connection, and the agent neither copies the pages nor has to be scheduled for every
/// frame — before, each Ready and Commit of a switch-over waited for the agent's relay to wake up, twice per hop.
/// Every other connection goes to Kestrel untouched (nothing is consumed by a peek).
/// </summary>
public sealed class HandoffListenerFactory(Func<string, string?> dataSocketOf, SocketConnectionFactoryOptions options, ILogger logger, int bufferBytes)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var socket = BindListenSocket(endpoint, bufferBytes);
        socket.Listen(512);
        return ValueTask.FromResult<IConnectionListener>(new HandoffListener(socket, dataSocketOf, new SocketConnectionContextFactory(options, logger), logger));
    }

    /// <summary>
    /// The agent's listen socket, bound as Kestrel's own transport binds it, with <paramref name="bufferBytes"/> of kernel
    /// buffering each way — inherited by accepted connections, so little of a migration stream is in flight when a
    /// guest freezes (<see cref="AgentServer.StreamBufferBytes"/>). Used with and without the hand-off.
    /// </summary>
    public static Socket BindListenSocket(EndPoint endpoint, int bufferBytes)
    {
        var socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        socket.ReceiveBufferSize = bufferBytes;
        socket.SendBufferSize = bufferBytes;
        return socket;
    }
}

/// <summary>One bound port of <see cref="HandoffListenerFactory"/>.</summary>
internal sealed class HandoffListener : IConnectionListener
{
    /// <summary>How long a connection may take to send a complete request head before Kestrel gets it as it is.</summary>
    private static readonly TimeSpan HeadTimeout = TimeSpan.FromSeconds(10);

    private static readonly byte[] SwitchingProtocols =
        System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {AgentServer.UpgradeProtocol}\r\n\r\n");

    private readonly Socket listenSocket;
    private readonly Func<string, string?> dataSocketOf;
    private readonly SocketConnectionContextFactory contexts;
    private readonly ILogger logger;
    private readonly Channel<ConnectionContext> forKestrel = Channel.CreateUnbounded<ConnectionContext>();
    private readonly CancellationTokenSource unbound = new();
    private readonly Task accepting;

    public HandoffListener(Socket listenSocket, Func<string, string?> dataSocketOf, SocketConnectionContextFactory contexts, ILogger logger)
    {
        this.listenSocket = listenSocket;
        this.dataSocketOf = dataSocketOf;
        this.contexts = contexts;
        this.logger = logger;
        EndPoint = listenSocket.LocalEndPoint!;
        accepting = Task.Run(AcceptLoopAsync);
    }

    public EndPoint EndPoint { get; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await forKestrel.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await unbound.CancelAsync().ConfigureAwait(false);
        listenSocket.Dispose();
        await accepting.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        while (forKestrel.Reader.TryRead(out var left)) await left.DisposeAsync().ConfigureAwait(false);
        contexts.Dispose();
        unbound.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = await listenSocket.AcceptAsync(unbound.Token).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
                {
                    continue; // gone before it was accepted
                }
                catch (SocketException e) when (!unbound.IsCancellationRequested)
                {
                    // E.g. out of file descriptors: the port must not stop answering for good; try again shortly.
                    logger.LogWarning("accepting a connection failed: {Error}", e.Message);
                    await Task.Delay(50, unbound.Token).ConfigureAwait(false);
                    continue;
                }
                _ = RouteAsync(socket);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Unbound.
        }
        finally
        {
            forKestrel.Writer.TryComplete();
        }
    }

    private async Task RouteAsync(Socket socket)
    {
        try
        {
            socket.NoDelay = true; // as Kestrel's own transport does: API answers and event lines go out at once
            if (await TryHandOverAsync(socket).ConfigureAwait(false)) return;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // Gone before it said what it is (or while it said it): nothing of it was taken, nobody waits for it.
            logger.LogDebug("connection from {Remote} closed before it was routed: {Error}", Remote(socket), e.Message);
            socket.Dispose();
            return;
        }
        catch (Exception e)
        {
            // A fault of ours: this connection is lost, the port goes on.
            logger.LogError(e, "connection from {Remote} could not be routed", Remote(socket));
            socket.Dispose();
            return;
        }
        if (!forKestrel.Writer.TryWrite(contexts.Create(socket))) socket.Dispose();
    }

    /// <summary>
    /// Hands a migration stream to its runtime and returns true; returns false, having consumed nothing, for every
    /// other connection (and for a stream whose runtime this agent cannot reach: Kestrel answers it with the reason).
    /// </summary>
    private async Task<bool> TryHandOverAsync(Socket socket)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(unbound.Token);
        timeout.CancelAfter(HeadTimeout);
        var ct = timeout.Token;
        var buffer = new byte[StreamRequestHead.MaxLength];
        string migrationId;
        int headLength;
        var wait = 1;
        while (true)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(buffer, SocketFlags.Peek, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!unbound.IsCancellationRequested)
            {
                return false;
            }
            if (n == 0) return false;
            var verdict = StreamRequestHead.Classify(buffer.AsSpan(0, n), out migrationId, out headLength);
            if (verdict == StreamRequestVerdict.Other) return false;
            if (verdict == StreamRequestVerdict.Stream) break;
            // Part of a head: a peek cannot wait for more than is already there, so look again shortly. Clients
            // send their head in one write; this is the rare split one.
            try
            {
                await Task.Delay(wait, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!unbound.IsCancellationRequested)
            {
                return false;
            }
            wait = Math.Min(wait * 2, 50);
        }
        if (dataSocketOf(migrationId) is not { } path) return false;
        using var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await unix.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return false;
        }
        // From here on the connection is ours: take the head (peeked above, so it is all there), answer, hand over.
        // A failure now closes it; the source sees its stream fail and, as with any lost stream, resumes the guest.
        try
        {
            for (var taken = 0; taken < headLength;)
            {
                var n = await socket.ReceiveAsync(buffer.AsMemory(taken, headLength - taken), SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0) throw new IOException("the source closed the connection during the upgrade");
                taken += n;
            }
            await socket.SendAsync(SwitchingProtocols, SocketFlags.None, ct).ConfigureAwait(false);
            await StreamHandoff.HandOverAsync(unix, socket, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            logger.LogWarning("migration stream of {Migration} from {Remote} not handed to its runtime: {Error}", migrationId, Remote(socket), e.Message);
        }
        // The runtime holds the connection now (or nobody does); closing this process's descriptor leaves it open there.
        socket.Dispose();
        return true;
    }

    private static string Remote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }
}
