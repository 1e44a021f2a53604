using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential.Tests;

/// <summary>A fresh temporary directory, removed when disposed.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ferry-conf-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A clock the test sets.</summary>
public sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;
    public override DateTimeOffset GetUtcNow() => Now;
    public void Advance(TimeSpan by) => Now += by;
}

/// <summary>
/// A small fleet: hosts with software TEE backends in their own state directories, a trust file accepting some of
/// them, and a workload measurement.
/// </summary>
public sealed class Fleet : IDisposable
{
    private readonly TempDir dir = new();
    private readonly Dictionary<string, SoftwareTeeBackend> hosts = [];

    public Fleet(params string[] trusted)
    {
        foreach (var name in trusted) Host(name);
        Trust = TrustStore.Create(trusted.Select(n => hosts[n].TrustEntry(n)));
    }

    public ManualTime Time { get; } = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
    public TrustStore Trust { get; }
    public string Root => dir.Path;

    public static byte[] ModuleBytes { get; } = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    public static LaunchConfig Config { get; } = new() { Args = ["app.wasm", "--serve"], Confidential = true };
    public static byte[] WorkloadMeasurement { get; } = Measurement.Compute(ModuleBytes, Config);
    public static byte[] OtherMeasurement { get; } = Measurement.Compute(ModuleBytes, new LaunchConfig { Args = ["app.wasm", "--debug"], Confidential = true });

    public string StateDir(string host) => Path.Combine(dir.Path, host);

    /// <summary>The backend of <paramref name="name"/> (trusted or not), created on first use.</summary>
    public SoftwareTeeBackend Host(string name)
    {
        if (!hosts.TryGetValue(name, out var tee))
        {
            tee = SoftwareTeeBackend.OpenOrCreate(StateDir(name), Time);
            hosts[name] = tee;
        }
        return tee;
    }

    public SessionOptions Options => new() { Time = Time };

    public MigrationSession Source(string host, Guid id, byte[]? measurement = null) =>
        MigrationSession.CreateSource(Host(host), Trust, measurement ?? WorkloadMeasurement, id, Options);

    public MigrationSession Destination(string host, Guid? id = null, byte[]? measurement = null) =>
        MigrationSession.CreateDestination(Host(host), Trust, measurement ?? WorkloadMeasurement, id, Options);

    /// <summary>Runs a whole handshake in memory; returns both established sessions.</summary>
    public (MigrationSession Source, MigrationSession Destination) Handshake(string from, string to, Guid? id = null)
    {
        var migration = id ?? Guid.NewGuid();
        var s = Source(from, migration);
        var d = Destination(to, migration);
        var m1 = s.Start();
        var m2 = d.Respond(m1);
        var m3 = s.ReceiveDestinationQuote(m2);
        var m4 = d.ReceiveSourceQuote(m3);
        s.ReceiveConfirmation(m4);
        return (s, d);
    }

    public void Dispose()
    {
        foreach (var h in hosts.Values) h.Dispose();
        dir.Dispose();
    }
}

public static class Bytes
{
    /// <summary>Index of <paramref name="pattern"/> in <paramref name="haystack"/>, or -1.</summary>
    public static int Find(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> pattern) => haystack.IndexOf(pattern);

    /// <summary>A recognisable 32-byte secret: any 32-byte window of it appearing in recorded traffic is a leak.</summary>
    public static byte[] Secret { get; } = SHA256.HashData("ferry confidential test secret"u8);

    /// <summary>Memory pages holding the secret repeatedly at varying offsets.</summary>
    public static byte[] PagesWithSecret(int pages)
    {
        var memory = new byte[pages * 4096];
        for (var p = 0; p < pages; p++)
        {
            var off = p * 4096 + (p * 97 % 4000);
            Secret.CopyTo(memory, off);
        }
        return memory;
    }
}
