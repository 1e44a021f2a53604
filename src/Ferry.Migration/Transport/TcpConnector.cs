using System.Net;
using System.Net.Sockets;

namespace Ferry.Migration.Transport;

/// <summary>Plain TCP to a destination that accepts migration streams directly (tests, benchmarks).</summary>
public sealed class TcpConnector(IPEndPoint endpoint) : IMigrationConnector
{
    public async Task<Stream[]> ConnectAsync(Guid migrationId, int streams, CancellationToken ct)
    {
        var result = new Stream[streams];
        try
        {
            for (var i = 0; i < streams; i++)
            {
                var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false);
                result[i] = new NetworkStream(socket, ownsSocket: true);
            }
        }
        catch
        {
            foreach (var s in result) s?.Dispose();
            throw;
        }
        return result;
    }
}

/// <summary>Accepts a migration's streams on a TCP listener (tests, benchmarks; agents proxy instead).</summary>
public sealed class TcpStreamListener : IDisposable
{
    private readonly TcpListener listener;

    public TcpStreamListener(IPAddress address)
    {
        listener = new TcpListener(address, 0);
        listener.Start();
    }

    public IPEndPoint Endpoint => (IPEndPoint)listener.LocalEndpoint;

    public async Task<Stream[]> AcceptAsync(int streams, CancellationToken ct)
    {
        var result = new Stream[streams];
        for (var i = 0; i < streams; i++)
        {
            var socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            socket.NoDelay = true;
            result[i] = new NetworkStream(socket, ownsSocket: true);
        }
        return result;
    }

    public void Dispose() => listener.Dispose();
}
