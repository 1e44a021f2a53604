using System.Net.Sockets;
using System.Text;

namespace Ferry.CpuFeatures.Probe;

/// <summary>
/// The few GDB remote-protocol packets `cpu probe` needs from qemu-user's gdbstub: continue (optionally
/// delivering a signal), read registers, kill. Packets are `$data#checksum`; acknowledgements are switched
/// off with QStartNoAckMode right after connecting.
/// </summary>
internal sealed class GdbRemote : IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _length;
    private bool _acks = true;

    private GdbRemote(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    /// <summary>Connects to 127.0.0.1:port, retrying while qemu starts listening.</summary>
    public static GdbRemote Connect(int port, DateTime deadline)
    {
        while (true)
        {
            try
            {
                var client = new TcpClient();
                client.Connect("127.0.0.1", port);
                var remote = new GdbRemote(client);
                remote.Send("QStartNoAckMode");
                if (remote.Receive(deadline) == "OK")
                {
                    remote._acks = false;
                }
                return remote;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    public void Send(string data)
    {
        int sum = 0;
        foreach (char c in data)
        {
            sum += c;
        }
        var packet = Encoding.ASCII.GetBytes($"${data}#{sum & 0xff:x2}");
        _stream.Write(packet);
    }

    /// <summary>The next packet's payload; console-output packets ("O…") are skipped.</summary>
    public string Receive(DateTime deadline)
    {
        while (true)
        {
            int start = Array.IndexOf(_buffer, (byte)'$', 0, _length);
            if (start >= 0)
            {
                int hash = Array.IndexOf(_buffer, (byte)'#', start, _length - start);
                if (hash >= 0 && hash + 2 < _length)
                {
                    string payload = Encoding.Latin1.GetString(_buffer, start + 1, hash - start - 1);
                    int consumed = hash + 3;
                    Buffer.BlockCopy(_buffer, consumed, _buffer, 0, _length - consumed);
                    _length -= consumed;
                    if (_acks)
                    {
                        _stream.Write("+"u8);
                    }
                    if (payload.StartsWith('O') && payload != "OK")
                    {
                        continue;
                    }
                    return payload;
                }
            }
            if (_length == _buffer.Length)
            {
                throw new IOException("gdbstub packet larger than 64 KiB");
            }
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException("no answer from qemu's gdbstub");
            }
            _client.ReceiveTimeout = (int)Math.Clamp(remaining.TotalMilliseconds, 1, int.MaxValue);
            int read;
            try
            {
                read = _stream.Read(_buffer, _length, _buffer.Length - _length);
            }
            catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut })
            {
                throw new TimeoutException("no answer from qemu's gdbstub");
            }
            if (read == 0)
            {
                throw new EndOfStreamException("qemu closed the gdb connection");
            }
            _length += read;
        }
    }

    /// <summary>RIP from a `g` reply: x86-64 register 16 (after rax…r15), little-endian hex.</summary>
    public static ulong RipFromRegisters(string registers)
    {
        if (registers.Length < 17 * 16)
        {
            throw new FormatException($"register reply too short ({registers.Length} hex digits)");
        }
        var bytes = Convert.FromHexString(registers.AsSpan(16 * 16, 16));
        return BitConverter.ToUInt64(bytes);
    }

    public void Dispose()
    {
        _stream.Dispose();
        _client.Dispose();
    }
}
