namespace Ferry.Migration.Transport;

/// <summary>Opens the streams of a migration to the destination (stream 0 is control, the rest carry pages).</summary>
public interface IMigrationConnector
{
    Task<Stream[]> ConnectAsync(Guid migrationId, int streams, CancellationToken ct);
}
