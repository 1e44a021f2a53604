using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Ferry.Enclave.Confidential;

/// <summary>
/// One accepted platform in a fleet trust file: a name for people, the TEE kind, its platform id and its public
/// attestation key (SubjectPublicKeyInfo DER; for the software backend an ECDSA P-256 key whose SHA-256 is the id).
/// </summary>
public sealed record TrustedPlatform
{
    public TrustedPlatform(string name, TeeKind tee, byte[] platformId, byte[] publicKey)
    {
        Name = name;
        Tee = tee;
        PlatformId = platformId;
        PublicKey = publicKey;
    }

    public string Name { get; }
    public TeeKind Tee { get; }
    public byte[] PlatformId { get; }
    public byte[] PublicKey { get; }

    /// <summary>The platform id of a software-backend public key: SHA-256 of its SubjectPublicKeyInfo DER.</summary>
    public static byte[] SoftwarePlatformId(ReadOnlySpan<byte> publicKeySpki) => SHA256.HashData(publicKeySpki);

    /// <summary>This entry as a JSON object, exactly as it appears in the trust file's "platforms" array (`ferry attest` prints it).</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            TrustStore.WriteEntry(w, this);
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public bool Equals(TrustedPlatform? other) =>
        other is not null && Name == other.Name && Tee == other.Tee && PlatformId.AsSpan().SequenceEqual(other.PlatformId) && PublicKey.AsSpan().SequenceEqual(other.PublicKey);

    public override int GetHashCode() => HashCode.Combine(Name, Tee, Convert.ToHexString(PlatformId));
}

/// <summary>
/// The fleet trust file: the platforms whose quotes a runtime accepts. JSON, documented in docs/confidential.md:
/// <code>{ "format": "ferry-trust/1", "platforms": [ { "name", "tee", "platformId", "publicKey" } ] }</code>
/// Loading validates everything (names unique, keys parse as P-256, ids match keys); unknown fields are refused
/// so that a typo cannot silently drop a constraint.
/// </summary>
public sealed class TrustStore
{
    public const string Format = "ferry-trust/1";

    private readonly Dictionary<string, TrustedPlatform> byId;

    private TrustStore(IReadOnlyList<TrustedPlatform> platforms)
    {
        Platforms = platforms;
        byId = platforms.ToDictionary(p => Convert.ToHexStringLower(p.PlatformId), StringComparer.Ordinal);
    }

    public static TrustStore Empty { get; } = new([]);

    public IReadOnlyList<TrustedPlatform> Platforms { get; }

    public bool TryGet(ReadOnlySpan<byte> platformId, out TrustedPlatform platform) =>
        byId.TryGetValue(Convert.ToHexStringLower(platformId), out platform!);

    /// <summary>A new store with <paramref name="platform"/> added; refuses a duplicate name or platform id.</summary>
    public TrustStore Add(TrustedPlatform platform)
    {
        var list = Platforms.Append(platform).ToList();
        Validate(list, "trust store");
        return new TrustStore(list);
    }

    /// <summary>A new store without the platform called <paramref name="name"/>.</summary>
    public TrustStore Remove(string name) => new(Platforms.Where(p => p.Name != name).ToList());

    public static TrustStore Create(IEnumerable<TrustedPlatform> platforms)
    {
        var list = platforms.ToList();
        Validate(list, "trust store");
        return new TrustStore(list);
    }

    /// <summary>
    /// SHA-256 over a canonical encoding of the accepted platforms (sorted by platform id, names included), so that
    /// two files listing the same platforms in another order or layout have the same digest. An integration that
    /// measures its trust anchor (docs/confidential.md, "Trust anchor") binds this value.
    /// </summary>
    public byte[] Digest()
    {
        var w = new WireWriter();
        w.Bytes("FERRY-TRUST"u8);
        w.U16(1);
        var sorted = Platforms.OrderBy(p => Convert.ToHexStringLower(p.PlatformId), StringComparer.Ordinal).ToList();
        w.U32((uint)sorted.Count);
        foreach (var p in sorted)
        {
            w.String(p.Name);
            w.U16((ushort)p.Tee);
            w.Bytes(p.PlatformId);
            w.Blob32(p.PublicKey);
        }
        return SHA256.HashData(w.Written);
    }

    public static TrustStore Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            throw new TrustStoreException($"trust file {path} does not exist (build it from `ferry attest` output on each host)");
        }
        catch (DirectoryNotFoundException)
        {
            throw new TrustStoreException($"trust file {path} does not exist (its directory is missing)");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TrustStoreException($"cannot read trust file {path}: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates a trust file's text; <paramref name="source"/> names it in errors.</summary>
    public static TrustStore Parse(string json, string source = "trust file")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new TrustStoreException($"{source}: not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new TrustStoreException($"{source}: the top level must be an object");
            string? format = null;
            var platforms = new List<TrustedPlatform>();
            var sawPlatforms = false;
            foreach (var prop in root.EnumerateObject())
            {
                switch (prop.Name)
                {
                    case "format":
                        format = prop.Value.ValueKind == JsonValueKind.String ? prop.Value.GetString() : throw new TrustStoreException($"{source}: \"format\" must be a string");
                        break;
                    case "platforms":
                        if (prop.Value.ValueKind != JsonValueKind.Array) throw new TrustStoreException($"{source}: \"platforms\" must be an array");
                        sawPlatforms = true;
                        var i = 0;
                        foreach (var e in prop.Value.EnumerateArray()) platforms.Add(ParseEntry(e, $"{source}: platforms[{i++}]"));
                        break;
                    default:
                        throw new TrustStoreException($"{source}: unknown field \"{prop.Name}\" (expected \"format\" and \"platforms\")");
                }
            }
            if (format != Format) throw new TrustStoreException($"{source}: \"format\" is {(format is null ? "missing" : $"\"{format}\"")}; this runtime reads \"{Format}\"");
            if (!sawPlatforms) throw new TrustStoreException($"{source}: \"platforms\" is missing");
            Validate(platforms, source);
            return new TrustStore(platforms);
        }
    }

    private static TrustedPlatform ParseEntry(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new TrustStoreException($"{where}: must be an object");
        string? name = null, tee = null, id = null, key = null;
        foreach (var prop in e.EnumerateObject())
        {
            if (prop.Value.ValueKind != JsonValueKind.String) throw new TrustStoreException($"{where}: \"{prop.Name}\" must be a string");
            var v = prop.Value.GetString();
            switch (prop.Name)
            {
                case "name": name = v; break;
                case "tee": tee = v; break;
                case "platformId": id = v; break;
                case "publicKey": key = v; break;
                default: throw new TrustStoreException($"{where}: unknown field \"{prop.Name}\" (expected name, tee, platformId, publicKey)");
            }
        }
        if (string.IsNullOrWhiteSpace(name)) throw new TrustStoreException($"{where}: \"name\" is missing or empty");
        where = $"{where} ('{name}')";
        var kind = tee switch
        {
            "software" => TeeKind.Software,
            "sgx" => TeeKind.Sgx,
            "tdx" => TeeKind.Tdx,
            "sev-snp" => TeeKind.SevSnp,
            null => throw new TrustStoreException($"{where}: \"tee\" is missing"),
            _ => throw new TrustStoreException($"{where}: unknown tee \"{tee}\" (software, sgx, tdx, sev-snp)"),
        };
        if (id is null) throw new TrustStoreException($"{where}: \"platformId\" is missing");
        if (key is null) throw new TrustStoreException($"{where}: \"publicKey\" is missing");
        byte[] idBytes, keyBytes;
        try
        {
            idBytes = Convert.FromHexString(id);
        }
        catch (FormatException)
        {
            throw new TrustStoreException($"{where}: \"platformId\" is not hex");
        }
        try
        {
            keyBytes = Convert.FromBase64String(key);
        }
        catch (FormatException)
        {
            throw new TrustStoreException($"{where}: \"publicKey\" is not base64");
        }
        var entry = new TrustedPlatform(name, kind, idBytes, keyBytes);
        ValidateEntry(entry, where);
        return entry;
    }

    private static void ValidateEntry(TrustedPlatform p, string where)
    {
        if (string.IsNullOrWhiteSpace(p.Name)) throw new TrustStoreException($"{where}: the name is empty");
        if (p.PlatformId.Length != Quote.PlatformIdSize) throw new TrustStoreException($"{where}: platformId must be {Quote.PlatformIdSize} bytes ({Quote.PlatformIdSize * 2} hex digits), not {p.PlatformId.Length}");
        if (p.Tee != TeeKind.Software) return; // other backends define their own key material
        try
        {
            using var key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(p.PublicKey, out var read);
            if (read != p.PublicKey.Length) throw new TrustStoreException($"{where}: publicKey has {p.PublicKey.Length - read} trailing bytes");
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != "1.2.840.10045.3.1.7")
            {
                throw new TrustStoreException($"{where}: publicKey is not an ECDSA P-256 key");
            }
        }
        catch (CryptographicException e)
        {
            throw new TrustStoreException($"{where}: publicKey is not an EC SubjectPublicKeyInfo: {e.Message}", e);
        }
        var expected = TrustedPlatform.SoftwarePlatformId(p.PublicKey);
        if (!expected.AsSpan().SequenceEqual(p.PlatformId))
        {
            throw new TrustStoreException($"{where}: platformId {Convert.ToHexStringLower(p.PlatformId)} does not match publicKey (its SHA-256 is {Convert.ToHexStringLower(expected)})");
        }
    }

    private static void Validate(List<TrustedPlatform> platforms, string source)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < platforms.Count; i++)
        {
            var p = platforms[i];
            ValidateEntry(p, $"{source}: platforms[{i}] ('{p.Name}')");
            if (!names.Add(p.Name)) throw new TrustStoreException($"{source}: the name '{p.Name}' appears twice");
            if (!ids.Add(Convert.ToHexStringLower(p.PlatformId))) throw new TrustStoreException($"{source}: platform {Convert.ToHexStringLower(p.PlatformId)} appears twice ('{p.Name}')");
        }
    }

    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteStartArray("platforms");
            foreach (var p in Platforms) WriteEntry(w, p);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    internal static void WriteEntry(Utf8JsonWriter w, TrustedPlatform p)
    {
        w.WriteStartObject();
        w.WriteString("name", p.Name);
        w.WriteString("tee", p.Tee switch
        {
            TeeKind.Software => "software",
            TeeKind.Sgx => "sgx",
            TeeKind.Tdx => "tdx",
            TeeKind.SevSnp => "sev-snp",
            _ => throw new ArgumentException($"unknown TEE kind {p.Tee}"),
        });
        w.WriteString("platformId", Convert.ToHexStringLower(p.PlatformId));
        w.WriteString("publicKey", Convert.ToBase64String(p.PublicKey));
        w.WriteEndObject();
    }

    /// <summary>Writes the trust file atomically (temporary file, then rename).</summary>
    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            File.WriteAllText(tmp, ToJson());
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new TrustStoreException($"cannot write trust file {path}: {e.Message}", e);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // best effort: a stray temporary file is harmless
        }
    }
}
