using System.Text;

namespace Ferry.Agent.Streams;

/// <summary>What the first bytes of a connection say about it (see <see cref="StreamRequestHead.Classify"/>).</summary>
public enum StreamRequestVerdict
{
    /// <summary>Not a well-formed migration stream request: Kestrel takes the connection and answers it.</summary>
    Other,

    /// <summary>Could still become one: more bytes are needed.</summary>
    Incomplete,

    /// <summary>A complete, well-formed upgrade request for a migration stream.</summary>
    Stream,
}

/// <summary>
/// Recognises the request a source runtime sends to open a migration stream
/// (<c>GET /v1/migrations/{id}/streams… HTTP/1.1</c> with <c>Connection: Upgrade</c> and
/// <c>Upgrade: ferry-migration/1</c>) from bytes peeked off a fresh connection. Only a request that is complete and
/// exactly that is taken out of Kestrel's hands; anything else — other endpoints, a missing upgrade header, an unknown
/// migration — goes on to Kestrel untouched and is answered there as before.
/// </summary>
public static class StreamRequestHead
{
    /// <summary>Longer heads are left to Kestrel (which refuses them with its own limits).</summary>
    public const int MaxLength = 8192;

    private const string Migrations = "/v1/migrations/";
    private const string Streams = "/streams";

    private static ReadOnlySpan<byte> Prefix => "GET /v1/migrations/"u8;
    private static ReadOnlySpan<byte> End => "\r\n\r\n"u8;

    /// <summary>Classifies <paramref name="peeked"/>, the first bytes of a connection; for <see cref="StreamRequestVerdict.Stream"/> also gives the migration id and the head's length in bytes.</summary>
    public static StreamRequestVerdict Classify(ReadOnlySpan<byte> peeked, out string migrationId, out int headLength)
    {
        migrationId = "";
        headLength = 0;
        var prefix = Prefix;
        var compared = Math.Min(peeked.Length, prefix.Length);
        if (!peeked[..compared].SequenceEqual(prefix[..compared])) return StreamRequestVerdict.Other;
        var end = peeked.IndexOf(End);
        if (end < 0) return peeked.Length >= MaxLength ? StreamRequestVerdict.Other : StreamRequestVerdict.Incomplete;
        if (end + End.Length > MaxLength) return StreamRequestVerdict.Other;
        var head = Encoding.ASCII.GetString(peeked[..end]);
        var lines = head.Split("\r\n");
        if (!TryParseRequestLine(lines[0], out migrationId)) return StreamRequestVerdict.Other;
        string? upgrade = null, connection = null;
        for (var i = 1; i < lines.Length; i++)
        {
            var colon = lines[i].IndexOf(':');
            if (colon <= 0) return StreamRequestVerdict.Other;
            var name = lines[i][..colon];
            var value = lines[i][(colon + 1)..].Trim();
            if (name.Equals("Upgrade", StringComparison.OrdinalIgnoreCase)) upgrade = value;
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase)) connection = value;
        }
        if (!string.Equals(upgrade, AgentServer.UpgradeProtocol, StringComparison.OrdinalIgnoreCase)) return StreamRequestVerdict.Other;
        if (connection is null || !connection.Split(',').Any(t => t.Trim().Equals("Upgrade", StringComparison.OrdinalIgnoreCase)))
        {
            return StreamRequestVerdict.Other;
        }
        headLength = end + End.Length;
        return StreamRequestVerdict.Stream;
    }

    private static bool TryParseRequestLine(string line, out string migrationId)
    {
        migrationId = "";
        var parts = line.Split(' ');
        if (parts.Length != 3 || parts[0] != "GET" || parts[2] != "HTTP/1.1") return false;
        var target = parts[1];
        var query = target.IndexOf('?');
        var path = query < 0 ? target : target[..query];
        if (path.Length <= Migrations.Length + Streams.Length || !path.EndsWith(Streams, StringComparison.Ordinal)) return false;
        var id = path[Migrations.Length..^Streams.Length];
        if (id.Length == 0 || id.Contains('/') || id.Contains('%')) return false;
        migrationId = id;
        return true;
    }
}
