using System.Buffers.Binary;

namespace Ferry.Agent.Tests.Support;

/// <summary>
/// Guests that fill 2 MiB of memory with a recognisable "secret" (word i = "SECRET" | i &lt;&lt; 48) and later check it:
/// the pattern a recording of sealed data must never contain.
/// </summary>
public static class SecretModule
{
    /// <summary>Words 1000..1003 of the secret as they lie in memory (and in a plain page record or snapshot).</summary>
    public static byte[] Pattern()
    {
        var b = new byte[32];
        for (var k = 0; k < 4; k++)
        {
            var i = 1000 + k;
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(k * 8), 0x0000544552434553UL | ((ulong)i << 48));
        }
        return b;
    }

    /// <summary>Assembles <paramref name="wat"/> into DIR/secret.wasm; the module's own bytes must not hold the pattern.</summary>
    public static string Build(string dir, string wat)
    {
        var watFile = Path.Combine(dir, "secret.wat");
        var wasm = Path.Combine(dir, "secret.wasm");
        File.WriteAllText(watFile, wat);
        var r = Repo.Run("wat2wasm", [watFile, "-o", wasm], TimeSpan.FromMinutes(1));
        Assert.True(r.ExitCode == 0, $"wat2wasm failed: {r}");
        Assert.True(File.ReadAllBytes(wasm).AsSpan().IndexOf(Pattern().AsSpan(0, 16)) < 0, "the pattern must not be in the module itself");
        return wasm;
    }
}
