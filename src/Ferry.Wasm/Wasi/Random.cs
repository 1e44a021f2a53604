using System.Security.Cryptography;

namespace Ferry.Wasm.Wasi;

public sealed unsafe partial class WasiHost
{
    /// <summary>random_get(buf: *u8, buf_len: u32): fills the buffer from the operating system's CSPRNG.</summary>
    private int RandomGet(int buf, int length)
    {
        var p = Ptr(buf, (uint)length);
        if (p == null) return Fail(Errno.Fault);
        RandomNumberGenerator.Fill(new Span<byte>(p, length));
        return Ok;
    }
}
