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

    /// <summary>
    /// Lose the source's Commit: on the control stream (?index=0) the client→agent frames are followed, and where the
    /// Commit frame begins the proxy stops forwarding and closes that connection — the commit never arrives.
    /// </summary>
    public bool DropCommit { get; set; }

    public bool CommitDropped => Volatile.Read(ref commitDropped) == 1;

    private int commitDropped;

    /// <summary>Frame type of Commit in the migration protocol (Ferry.Migration.Protocol.MessageType.Commit).</summary>
    private const ushort CommitFrame = 9;

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
        // Frame following on the control stream (DropCommit): bytes from the first frame on, and where the next header starts.
        List<byte>? frames = null;
        var nextFrame = 0;
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
                        if (DropCommit && text.Contains("/streams?index=0 ", StringComparison.Ordinal))
                        {
                            frames = [.. head.Skip(end + 4)];
                            total += n;
                            recording.Add(buffer.AsSpan(0, n));
                            if (!await ForwardFramesAsync(to, buffer.AsMemory(0, n), n - frames.Count, frames, () => nextFrame, v => nextFrame = v)) break;
                            continue;
                        }
                        if (TamperStream is { } s && text.StartsWith("GET ", StringComparison.Ordinal) && text.Contains($"/streams?index={s} ", StringComparison.Ordinal))
                        {
                            // Hello frame (8-byte header + 20) then the first data frame's 8-byte header.
                            flipAt = end + 4 + 28 + 8 + TamperOffset;
                        }
                    }
                }
                if (frames is not null)
                {
                    frames.AddRange(buffer.AsSpan(0, n));
                    recording.Add(buffer.AsSpan(0, n));
                    total += n;
                    if (!await ForwardFramesAsync(to, buffer.AsMemory(0, n), 0, frames, () => nextFrame, v => nextFrame = v)) break;
                    continue;
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

    /// <summary>
    /// Forwards <paramref name="chunk"/> (whose frame bytes start at <paramref name="framesFrom"/> within it and are the
    /// tail of <paramref name="frames"/>) up to the start of a Commit frame; false once the commit was dropped.
    /// </summary>
    private async Task<bool> ForwardFramesAsync(Socket to, ReadOnlyMemory<byte> chunk, int framesFrom, List<byte> frames, Func<int> next, Action<int> setNext)
    {
        // Offset of the chunk's first frame byte within `frames`.
        var chunkStart = frames.Count - (chunk.Length - framesFrom);
        var cursor = next();
        while (cursor + 8 <= frames.Count)
        {
            var length = frames[cursor] | frames[cursor + 1] << 8 | frames[cursor + 2] << 16 | frames[cursor + 3] << 24;
            var type = (ushort)(frames[cursor + 4] | frames[cursor + 5] << 8);
            if (type == CommitFrame)
            {
                var keep = framesFrom + Math.Max(0, cursor - chunkStart);
                if (keep > 0) await to.SendAsync(chunk[..keep], SocketFlags.None, stop.Token);
                Volatile.Write(ref commitDropped, 1);
                return false;
            }
            cursor += 8 + length;
        }
        setNext(cursor);
        await to.SendAsync(chunk, SocketFlags.None, stop.Token);
        return true;
    }

    public void Dispose()
    {
        stop.Cancel();
        listener.Stop();
    }
}
