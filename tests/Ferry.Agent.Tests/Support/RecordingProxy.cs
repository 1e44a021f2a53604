using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Ferry.Agent.Tests.Support;

/// <summary>
/// A loopback TCP proxy in front of an agent: every byte of every connection through it is recorded (each direction
/// of each connection contiguously), and it can flip one byte of one migration page stream. A migration whose
/// `--to` is <see cref="Url"/> sends all its traffic — HTTP calls and the upgraded streams — through it, so this is
/// what the network sees.
/// </summary>
public sealed class RecordingProxy : IDisposable
{
    private readonly TcpListener listener;
    private readonly Uri target;
    private readonly List<Recording> recordings = [];
    private readonly CancellationTokenSource stop = new();
    private int tampered;

    public RecordingProxy(Uri target)
    {
        this.target = target;
        listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        _ = Task.Run(AcceptAsync);
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";

    /// <summary>Flip one bit of the client→agent bytes of migration stream N (its upgrade request names ?index=N).</summary>
    public int? TamperStream { get; set; }

    /// <summary>Where to flip: this many bytes into the payload of the stream's first frame after its Hello.</summary>
    public int TamperOffset { get; set; } = 2000;

    public bool Tampered => Volatile.Read(ref tampered) == 1;

    public long RecordedBytes
    {
        get
        {
            lock (recordings) return recordings.Sum(r => r.Length);
        }
    }

    public void Clear()
    {
        lock (recordings) recordings.Clear();
    }

    /// <summary>Does any recorded byte sequence (one direction of one connection) contain <paramref name="pattern"/>?</summary>
    public bool Contains(ReadOnlySpan<byte> pattern)
    {
        Recording[] all;
        lock (recordings) all = [.. recordings];
        foreach (var r in all)
        {
            if (r.Snapshot().AsSpan().IndexOf(pattern) >= 0) return true;
        }
        return false;
    }

    private sealed class Recording
    {
        private readonly MemoryStream bytes = new();

        public long Length
        {
            get
            {
                lock (bytes) return bytes.Length;
            }
        }

        public void Add(ReadOnlySpan<byte> data)
        {
            lock (bytes) bytes.Write(data);
        }

        public byte[] Snapshot()
        {
            lock (bytes) return bytes.ToArray();
        }
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient())
        {
            try
            {
                client.NoDelay = true;
                server.NoDelay = true;
                await server.ConnectAsync(target.Host, target.Port, stop.Token);
                var up = new Recording();
                var down = new Recording();
                lock (recordings)
                {
                    recordings.Add(up);
                    recordings.Add(down);
                }
                var a = PumpAsync(client.Client, server.Client, up, tamper: true);
                var b = PumpAsync(server.Client, client.Client, down, tamper: false);
                await Task.WhenAll(a, b);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task PumpAsync(Socket from, Socket to, Recording recording, bool tamper)
    {
        var buffer = new byte[65536];
        var head = new List<byte>();
        long total = 0;
        long flipAt = -1;
        var headDone = !tamper;
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, stop.Token);
                if (n == 0) break;
                if (!headDone)
                {
                    head.AddRange(buffer.AsSpan(0, n));
                    var text = Encoding.ASCII.GetString([.. head]);
                    var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                    if (end >= 0)
                    {
                        headDone = true;
                        if (TamperStream is { } s && text.StartsWith("GET ", StringComparison.Ordinal) && text.Contains($"/streams?index={s} ", StringComparison.Ordinal))
                        {
                            // Hello frame (8-byte header + 20) then the first data frame's 8-byte header.
                            flipAt = end + 4 + 28 + 8 + TamperOffset;
                        }
                    }
                }
                if (flipAt >= total && flipAt < total + n && Interlocked.Exchange(ref tampered, 1) == 0)
                {
                    buffer[flipAt - total] ^= 0x01;
                }
                recording.Add(buffer.AsSpan(0, n));
                total += n;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        // One side ended or went away: close both, as the agents do (the migration protocol never half-closes).
        try
        {
            from.Close();
            to.Close();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        stop.Cancel();
        listener.Stop();
    }
}
