using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential.Tests;

public class TrustStoreTests
{
    [Fact]
    public void Saves_and_loads_the_fleet_trust_file()
    {
        using var fleet = new Fleet("host-a", "host-b");
        var path = Path.Combine(fleet.Root, "trust.json");
        fleet.Trust.Save(path);
        var loaded = TrustStore.Load(path);
        Assert.Equal(fleet.Trust.Platforms, loaded.Platforms);
        Assert.True(loaded.TryGet(fleet.Host("host-b").PlatformId, out var b));
        Assert.Equal("host-b", b.Name);
        Assert.False(loaded.TryGet(new byte[32], out _));
        Assert.Contains("\"format\": \"ferry-trust/1\"", File.ReadAllText(path));
    }

    [Fact]
    public void An_operator_builds_the_file_from_each_hosts_printed_entry()
    {
        using var fleet = new Fleet();
        var entries = new[] { "x", "y" }.Select(n => fleet.Host(n).TrustEntry(n).ToJson());
        var json = "{ \"format\": \"ferry-trust/1\", \"platforms\": [" + string.Join(",", entries) + "] }";
        var store = TrustStore.Parse(json);
        Assert.Equal(["x", "y"], store.Platforms.Select(p => p.Name));
        Assert.Equal(fleet.Host("y").PublicKey, store.Platforms[1].PublicKey);
    }

    [Fact]
    public void Digest_depends_on_the_set_of_platforms_not_their_order()
    {
        using var fleet = new Fleet("a", "b");
        var reversed = TrustStore.Create(fleet.Trust.Platforms.Reverse());
        Assert.Equal(fleet.Trust.Digest(), reversed.Digest());
        Assert.NotEqual(fleet.Trust.Digest(), fleet.Trust.Remove("a").Digest());
        Assert.NotEqual(fleet.Trust.Digest(), fleet.Trust.Add(fleet.Host("c").TrustEntry("c")).Digest());
    }

    public static TheoryData<string, string> BadFiles()
    {
        using var k = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var spki = k.ExportSubjectPublicKeyInfo();
        var key = Convert.ToBase64String(spki);
        var id = Convert.ToHexStringLower(SHA256.HashData(spki));
        using var k384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var spki384 = k384.ExportSubjectPublicKeyInfo();
        string Entry(string name = "a", string tee = "software", string? pid = null, string? pk = null, string extra = "") =>
            $"{{\"name\":\"{name}\",\"tee\":\"{tee}\",\"platformId\":\"{pid ?? id}\",\"publicKey\":\"{pk ?? key}\"{extra}}}";
        string File(params string[] entries) => $"{{\"format\":\"ferry-trust/1\",\"platforms\":[{string.Join(",", entries)}]}}";
        return new TheoryData<string, string>
        {
            { "not json", "not valid JSON" },
            { "[]", "top level must be an object" },
            { "{\"platforms\":[]}", "\"format\" is missing" },
            { "{\"format\":\"ferry-trust/2\",\"platforms\":[]}", "this runtime reads \"ferry-trust/1\"" },
            { "{\"format\":\"ferry-trust/1\"}", "\"platforms\" is missing" },
            { "{\"format\":\"ferry-trust/1\",\"platforms\":[],\"extra\":1}", "unknown field \"extra\"" },
            { File(Entry(extra: ",\"publickey\":\"x\"")), "unknown field \"publickey\"" },
            { File(Entry(name: "")), "\"name\" is missing or empty" },
            { File(Entry(tee: "quantum")), "unknown tee \"quantum\"" },
            { File(Entry(pid: "zz")), "\"platformId\" is not hex" },
            { File(Entry(pid: "abcd")), "platformId must be 32 bytes" },
            { File(Entry(pid: new string('0', 64))), "does not match publicKey" },
            { File(Entry(pk: "***")), "\"publicKey\" is not base64" },
            { File(Entry(pk: Convert.ToBase64String([1, 2, 3]))), "not an EC SubjectPublicKeyInfo" },
            { File(Entry(pk: Convert.ToBase64String(spki384), pid: Convert.ToHexStringLower(SHA256.HashData(spki384)))), "not an ECDSA P-256 key" },
            { File(Entry(), Entry()), "appears twice" },
            { File(Entry("a"), Entry("b")), "appears twice ('b')" },
        };
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Refuses_invalid_trust_files_saying_what_is_wrong(string json, string message)
    {
        var e = Assert.Throws<TrustStoreException>(() => TrustStore.Parse(json, "fleet.json"));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("fleet.json", e.Message);
    }

    [Fact]
    public void Reports_a_missing_file()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<TrustStoreException>(() => TrustStore.Load(dir.Sub("nope.json")));
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Refuses_adding_a_duplicate()
    {
        using var fleet = new Fleet("a");
        Assert.Throws<TrustStoreException>(() => fleet.Trust.Add(fleet.Host("a").TrustEntry("a-again")));
        Assert.Throws<TrustStoreException>(() => fleet.Trust.Add(fleet.Host("z").TrustEntry("a")));
    }
}
