using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferry.Migration.Protocol;

public enum Strategy
{
    StopCopy,
    PreCopy,
    PostCopy,
    Hybrid,
}

public enum TrackingMethod
{
    Compiler,
    Kernel,
}

/// <summary>What the destination needs to know to host the workload (sent as JSON in the Setup message).</summary>
public sealed record WorkloadSetup
{
    public required string MigrationId { get; init; }
    public required string WorkloadId { get; init; }
    public required string Name { get; init; }
    public required string ModuleSha256 { get; init; }
    public required long ModuleBytes { get; init; }
    public required Strategy Strategy { get; init; }
    public required TrackingMethod Tracking { get; init; }
    public required int Streams { get; init; }
    public required ulong MemoryBytes { get; init; }
    public ulong? MemoryLimitBytes { get; init; }
    public bool Confidential { get; init; }
    /// <summary>Free-form launch details the runtime host needs (args, env, compile options); untrusted here.</summary>
    public Dictionary<string, string> Launch { get; init; } = [];
}

[JsonSerializable(typeof(WorkloadSetup))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
internal sealed partial class ProtocolJson : JsonSerializerContext;

/// <summary>Encoders for the small fixed-layout messages.</summary>
public static class Messages
{
    public static byte[] Hello(Guid migration, int stream)
    {
        var b = new byte[20];
        migration.TryWriteBytes(b);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(16), stream);
        return b;
    }

    public static (Guid Migration, int Stream) ParseHello(ReadOnlySpan<byte> p)
    {
        if (p.Length != 20) throw new ProtocolException("bad Hello");
        return (new Guid(p[..16]), BinaryPrimitives.ReadInt32LittleEndian(p[16..]));
    }

    public static byte[] Setup(WorkloadSetup setup) => JsonSerializer.SerializeToUtf8Bytes(setup, ProtocolJson.Default.WorkloadSetup);

    public static WorkloadSetup ParseSetup(ReadOnlySpan<byte> p)
    {
        try
        {
            return JsonSerializer.Deserialize(p, ProtocolJson.Default.WorkloadSetup) ?? throw new ProtocolException("empty Setup");
        }
        catch (JsonException e)
        {
            throw new ProtocolException("bad Setup: " + e.Message);
        }
    }

    public static byte[] Int64(long v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        return b;
    }

    public static long ParseInt64(ReadOnlySpan<byte> p) =>
        p.Length == 8 ? BinaryPrimitives.ReadInt64LittleEndian(p) : throw new ProtocolException("bad 64-bit field");

    public static byte[] Pages(ReadOnlySpan<long> pages)
    {
        var b = new byte[pages.Length * 8];
        for (var i = 0; i < pages.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(i * 8), pages[i]);
        return b;
    }

    public static long[] ParsePages(ReadOnlySpan<byte> p)
    {
        if (p.Length % 8 != 0) throw new ProtocolException("bad page list");
        var r = new long[p.Length / 8];
        for (var i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadInt64LittleEndian(p[(i * 8)..]);
        return r;
    }

    public static byte[] Counts(long[] counts) => Pages(counts);

    /// <summary>RoundSent: the round, then the cumulative batch count of every stream.</summary>
    public static byte[] RoundSent(int round, long[] batchesPerStream)
    {
        var values = new long[batchesPerStream.Length + 1];
        values[0] = round;
        batchesPerStream.CopyTo(values, 1);
        return Pages(values);
    }

    public static (int Round, long[] BatchesPerStream) ParseRoundSent(ReadOnlySpan<byte> p, int streams)
    {
        var values = ParsePages(p);
        if (values.Length != streams + 1 || values[0] is < 0 or > int.MaxValue) throw new ProtocolException("bad RoundSent");
        return ((int)values[0], values[1..]);
    }

    public static byte[] Text(string s) => System.Text.Encoding.UTF8.GetBytes(s);
}
