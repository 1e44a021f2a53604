using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Ferry.Enclave.Confidential.Tests;

public class MeasurementTests
{
    private static readonly byte[] Module = Encoding.ASCII.GetBytes("\0asm\x01\0\0\0 pretend module body");

    private static LaunchConfig Full => new()
    {
        Args = ["kv.wasm", "--port", "80"],
        Env = [new("HOME", "/data"), new("MODE", "prod")],
        PreopenGuestNames = ["/data", "/tmp"],
        MaxMemoryBytes = 1UL << 30,
        Entry = null,
        Confidential = true,
    };

    // An independent encoder written from the documented layout (docs/confidential.md), not from the library.
    private static byte[] ByHand(byte[] module, string[] args, (string, string)[] env, string[] preopens, ulong? mem, string? entry, bool confidential)
    {
        var ms = new MemoryStream();
        void Raw(ReadOnlySpan<byte> b) => ms.Write(b);
        void U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); Raw(b); }
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); Raw(b); }
        void U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); Raw(b); }
        void Str(string s) { var b = Encoding.UTF8.GetBytes(s); U32((uint)b.Length); Raw(b); }
        Raw("FERRY-LAUNCH-CONFIG"u8);
        U16(1);
        U32((uint)args.Length);
        foreach (var a in args) Str(a);
        U32((uint)env.Length);
        foreach (var (k, v) in env) { Str(k); Str(v); }
        U32((uint)preopens.Length);
        foreach (var p in preopens) Str(p);
        ms.WriteByte(mem.HasValue ? (byte)1 : (byte)0);
        U64(mem ?? 0);
        ms.WriteByte(entry is null ? (byte)0 : (byte)1);
        Str(entry ?? "");
        ms.WriteByte(confidential ? (byte)1 : (byte)0);
        var config = ms.ToArray();

        var all = new MemoryStream();
        all.Write("FERRY-MEASUREMENT"u8);
        Span<byte> tmp = stackalloc byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(tmp, 1); all.Write(tmp[..2]);
        BinaryPrimitives.WriteUInt64LittleEndian(tmp, (ulong)module.Length); all.Write(tmp);
        all.Write(module);
        BinaryPrimitives.WriteUInt32LittleEndian(tmp, (uint)config.Length); all.Write(tmp[..4]);
        all.Write(config);
        return SHA256.HashData(all.ToArray());
    }

    [Fact]
    public void Matches_the_documented_encoding()
    {
        var expected = ByHand(Module, ["kv.wasm", "--port", "80"], [("HOME", "/data"), ("MODE", "prod")], ["/data", "/tmp"], 1UL << 30, null, true);
        Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(Measurement.Compute(Module, Full)));

        var withEntry = new LaunchConfig { Args = ["x"], Entry = "compute", MaxMemoryBytes = null };
        Assert.Equal(ByHand(Module, ["x"], [], [], null, "compute", false), Measurement.Compute(Module, withEntry));
    }

    [Fact]
    public void Is_pinned_so_that_an_encoding_change_is_noticed()
    {
        // If this changes, every deployed workload's identity changes: bump LaunchConfig.EncodingVersion and say so in the docs.
        Assert.Equal(PinnedFull, Measurement.Hex(Measurement.Compute(Module, Full)));
    }

    private const string PinnedFull = "ecb8d02866132c63828592a11ca951f61a1c89b75ab7ee3f20ce09c0bb1be78c";

    [Fact]
    public void Every_identity_field_changes_the_measurement()
    {
        var baseline = Measurement.Compute(Module, Full);
        var variants = new Dictionary<string, byte[]>
        {
            ["module byte"] = Measurement.Compute([.. Module[..^1], (byte)(Module[^1] ^ 1)], Full),
            ["module length"] = Measurement.Compute([.. Module, 0], Full),
            ["argument"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = ["kv.wasm", "--port", "81"], Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Confidential = c.Confidential })),
            ["argument split"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = ["kv.wasm", "--port8", "0"], Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Confidential = c.Confidential })),
            ["env order"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = [new("MODE", "prod"), new("HOME", "/data")], PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Confidential = c.Confidential })),
            ["env value"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = [new("HOME", "/data"), new("MODE", "test")], PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Confidential = c.Confidential })),
            ["preopen"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = c.Env, PreopenGuestNames = ["/data"], MaxMemoryBytes = c.MaxMemoryBytes, Confidential = c.Confidential })),
            ["memory limit"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = 2UL << 30, Confidential = c.Confidential })),
            ["no memory limit"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = null, Confidential = c.Confidential })),
            ["entry"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Entry = "main", Confidential = c.Confidential })),
            ["not confidential"] = Measurement.Compute(Module, With(Full, c => new LaunchConfig { Args = c.Args, Env = c.Env, PreopenGuestNames = c.PreopenGuestNames, MaxMemoryBytes = c.MaxMemoryBytes, Confidential = false })),
        };
        foreach (var (what, m) in variants) Assert.False(m.AsSpan().SequenceEqual(baseline), $"changing the {what} did not change the measurement");
        Assert.Equal(variants.Count, variants.Values.Select(Convert.ToHexString).Distinct().Count());
    }

    private static LaunchConfig With(LaunchConfig c, Func<LaunchConfig, LaunchConfig> f) => f(c);

    [Fact]
    public void Equal_configurations_built_separately_measure_the_same()
    {
        var a = Measurement.Compute(Module, Full);
        var b = Measurement.Compute(Module.ToArray(), new LaunchConfig
        {
            Args = new List<string> { "kv.wasm", "--port", "80" },
            Env = new List<KeyValuePair<string, string>> { new("HOME", "/data"), new("MODE", "prod") },
            PreopenGuestNames = new[] { "/data", "/tmp" },
            MaxMemoryBytes = 1UL << 30,
            Confidential = true,
        });
        Assert.Equal(a, b);
        Assert.Equal(Measurement.Size, a.Length);
    }

    [Theory]
    [InlineData("dup", "environment key 'A' appears twice")]
    [InlineData("eq", "contains '='")]
    [InlineData("nul", "NUL")]
    [InlineData("surrogate", "lone surrogate")]
    [InlineData("emptykey", "environment key is empty")]
    [InlineData("emptypreopen", "preopen guest name is empty")]
    [InlineData("emptyentry", "entry export name is empty")]
    public void Refuses_ambiguous_or_impossible_configurations(string which, string message)
    {
        var config = which switch
        {
            "dup" => new LaunchConfig { Env = [new("A", "1"), new("A", "2")] },
            "eq" => new LaunchConfig { Env = [new("A=B", "1")] },
            "nul" => new LaunchConfig { Args = ["a\0b"] },
            "surrogate" => new LaunchConfig { Args = ["\ud800"] },
            "emptykey" => new LaunchConfig { Env = [new("", "1")] },
            "emptypreopen" => new LaunchConfig { PreopenGuestNames = [""] },
            "emptyentry" => new LaunchConfig { Entry = "" },
            _ => throw new ArgumentException(which),
        };
        var e = Assert.Throws<ArgumentException>(() => Measurement.Compute(Module, config));
        Assert.Contains(message, e.Message);
    }
}
