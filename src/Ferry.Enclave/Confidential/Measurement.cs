using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential;

/// <summary>
/// The launch configuration that, together with the module bytes, is a confidential workload's identity.
/// Only what the guest can observe, or what changes what the guest computes, belongs here; everything that
/// differs between hosts for the same workload (host paths behind preopens, where stdout goes, the write
/// tracking implementation, address-space reservations) does not, or a workload could never move between hosts.
/// The canonical encoding is <see cref="Encode"/>; docs/confidential.md gives it byte by byte.
/// </summary>
public sealed class LaunchConfig
{
    /// <summary>Encoding version written into every measurement; bumped whenever <see cref="Encode"/> changes.</summary>
    public const ushort EncodingVersion = 1;

    /// <summary>argv as the guest sees it, argv[0] included (WASI args_get). Order matters.</summary>
    public IReadOnlyList<string> Args { get; init; } = [];

    /// <summary>Environment as the guest sees it (WASI environ_get), in that order. Keys are unique, non-empty, without '='.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Env { get; init; } = [];

    /// <summary>
    /// Guest-visible names of the preopened directories, in file-descriptor order (the guest sees both). The host
    /// directories behind them are deliberately not part of the identity: they differ from host to host.
    /// </summary>
    public IReadOnlyList<string> PreopenGuestNames { get; init; } = [];

    /// <summary>Upper bound on linear memory (--mem-max), or null for the module's own limit. The guest sees it when memory.grow fails.</summary>
    public ulong? MaxMemoryBytes { get; init; }

    /// <summary>The export that is run: null for _start, otherwise the --invoke export name.</summary>
    public string? Entry { get; init; }

    /// <summary>
    /// Confidential workloads migrate only sealed, to attested peers. Part of the identity so that a quote for a
    /// non-confidential launch of the same module never satisfies a confidential workload's policy.
    /// </summary>
    public bool Confidential { get; init; }

    private static ReadOnlySpan<byte> Domain => "FERRY-LAUNCH-CONFIG"u8;

    /// <summary>
    /// The canonical, versioned encoding: domain label, version, then every field length-prefixed in a fixed
    /// order (docs/confidential.md). Refuses configurations that two different encodings could describe the
    /// same guest view of, or that the guest cannot be given (NUL bytes, '=' in keys, duplicate keys).
    /// </summary>
    public byte[] Encode()
    {
        Validate();
        var w = new WireWriter(512);
        w.Bytes(Domain);
        w.U16(EncodingVersion);
        w.U32((uint)Args.Count);
        foreach (var a in Args) w.String(a);
        w.U32((uint)Env.Count);
        foreach (var (k, v) in Env)
        {
            w.String(k);
            w.String(v);
        }
        w.U32((uint)PreopenGuestNames.Count);
        foreach (var p in PreopenGuestNames) w.String(p);
        w.U8(MaxMemoryBytes.HasValue ? (byte)1 : (byte)0);
        w.U64(MaxMemoryBytes ?? 0);
        w.U8(Entry is null ? (byte)0 : (byte)1);
        w.String(Entry ?? "");
        w.U8(Confidential ? (byte)1 : (byte)0);
        return w.ToArray();
    }

    private void Validate()
    {
        for (var i = 0; i < Args.Count; i++) CheckText(Args[i], $"argument {i}");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (k, v) in Env)
        {
            CheckText(k, "environment key");
            CheckText(v, $"environment value of '{k}'");
            if (k.Length == 0) throw new ArgumentException("launch config: an environment key is empty");
            if (k.Contains('=')) throw new ArgumentException($"launch config: environment key '{k}' contains '='");
            if (!keys.Add(k)) throw new ArgumentException($"launch config: environment key '{k}' appears twice");
        }
        foreach (var p in PreopenGuestNames)
        {
            CheckText(p, "preopen name");
            if (p.Length == 0) throw new ArgumentException("launch config: a preopen guest name is empty");
        }
        if (Entry is not null)
        {
            CheckText(Entry, "entry export");
            if (Entry.Length == 0) throw new ArgumentException("launch config: the entry export name is empty (use null for _start)");
        }
    }

    private static void CheckText(string s, string what)
    {
        ArgumentNullException.ThrowIfNull(s, what);
        if (s.Contains('\0')) throw new ArgumentException($"launch config: {what} contains a NUL character");
        try
        {
            WireWriter.Strict.GetByteCount(s);
        }
        catch (System.Text.EncoderFallbackException)
        {
            throw new ArgumentException($"launch config: {what} is not valid Unicode (lone surrogate)");
        }
    }
}

/// <summary>A confidential workload's measurement: SHA-256 over the module bytes and its canonical launch configuration.</summary>
public static class Measurement
{
    public const int Size = 32;

    private static ReadOnlySpan<byte> Domain => "FERRY-MEASUREMENT"u8;

    /// <summary>
    /// SHA-256( "FERRY-MEASUREMENT" ‖ u16 version ‖ u64 module length ‖ module bytes ‖ u32 config length ‖
    /// <see cref="LaunchConfig.Encode"/> ), all integers little-endian. Length prefixes keep the module and
    /// the configuration from sliding into each other.
    /// </summary>
    public static byte[] Compute(ReadOnlySpan<byte> moduleBytes, LaunchConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var encoded = config.Encode();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var w = new WireWriter(64);
        w.Bytes(Domain);
        w.U16(LaunchConfig.EncodingVersion);
        w.U64((ulong)moduleBytes.Length);
        hash.AppendData(w.Written);
        hash.AppendData(moduleBytes);
        var tail = new WireWriter(encoded.Length + 4);
        tail.Blob32(encoded);
        hash.AppendData(tail.Written);
        return hash.GetHashAndReset();
    }

    /// <summary>Lower-case hex of a measurement (or any identifier).</summary>
    public static string Hex(ReadOnlySpan<byte> value) => Convert.ToHexStringLower(value);

    /// <summary>The first 8 bytes in hex, for error messages.</summary>
    public static string Short(ReadOnlySpan<byte> value) => Convert.ToHexStringLower(value[..Math.Min(8, value.Length)]);
}
