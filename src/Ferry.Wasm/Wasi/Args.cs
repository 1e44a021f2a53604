using System.Text;

namespace Ferry.Wasm.Wasi;

public sealed unsafe partial class WasiHost
{
    /// <summary>
    /// args_sizes_get(argc_out: *u32, argv_buf_size_out: *u32): the number of arguments and the bytes their
    /// NUL-terminated UTF-8 strings need together.
    /// </summary>
    private int ArgsSizesGet(int argcOut, int bufSizeOut) => SizesGet(Context.Args, argcOut, bufSizeOut);

    /// <summary>
    /// args_get(argv: *u32[argc], argv_buf: *u8): writes each argument NUL-terminated into argv_buf, one after
    /// the other, and its address into argv[i].
    /// </summary>
    private int ArgsGet(int argv, int argvBuf) => Get(Context.Args, argv, argvBuf);

    /// <summary>environ_sizes_get(count_out: *u32, buf_size_out: *u32): as args_sizes_get, for "KEY=VALUE" entries.</summary>
    private int EnvironSizesGet(int countOut, int bufSizeOut) => SizesGet(Context.Env, countOut, bufSizeOut);

    /// <summary>environ_get(environ: *u32[count], environ_buf: *u8): as args_get, for "KEY=VALUE" entries.</summary>
    private int EnvironGet(int environ, int environBuf) => Get(Context.Env, environ, environBuf);

    private int SizesGet(IReadOnlyList<string> items, int countOut, int sizeOut)
    {
        long size = 0;
        foreach (var s in items) size += Encoding.UTF8.GetByteCount(s) + 1;
        if (size > uint.MaxValue) return Fail(Errno.Overflow);
        if (!TryWriteU32(countOut, (uint)items.Count) || !TryWriteU32(sizeOut, (uint)size)) return Fail(Errno.Fault);
        return Ok;
    }

    private int Get(IReadOnlyList<string> items, int pointers, int buffer)
    {
        var at = (uint)buffer;
        for (var i = 0; i < items.Count; i++)
        {
            var s = items[i];
            var n = Encoding.UTF8.GetByteCount(s);
            var dst = Ptr((int)at, n + 1);
            if (dst == null || !TryWriteU32(pointers + 4 * i, at)) return Fail(Errno.Fault);
            Encoding.UTF8.GetBytes(s, new Span<byte>(dst, n));
            dst[n] = 0;
            at += (uint)n + 1;
        }
        return Ok;
    }
}
