namespace Ferry.Bench.Engine;

/// <summary>Reads just the section headers of a module binary (for the size of the code section).</summary>
public static class WasmSections
{
    private const byte CodeSection = 10;

    /// <summary>Bytes of the code section's contents, or 0 if there is none.</summary>
    public static long CodeBytes(ReadOnlySpan<byte> module)
    {
        var at = 8; // magic and version
        while (at < module.Length)
        {
            var id = module[at++];
            var size = (long)ReadU32(module, ref at);
            if (id == CodeSection) return size;
            at += (int)size;
        }
        return 0;
    }

    private static uint ReadU32(ReadOnlySpan<byte> bytes, ref int at)
    {
        uint value = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            var b = bytes[at++];
            value |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) break;
        }
        return value;
    }
}
