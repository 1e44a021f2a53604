using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Ferry.Agent.Api;

namespace Ferry.Agent.Client;

/// <summary>The agent answered with an error (its message names what went wrong).</summary>
public sealed class AgentErrorException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>The agent could not be reached at all.</summary>
public sealed class AgentUnreachableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Parses agent URLs as operators write them: http://HOST:PORT (the scheme may be left out).</summary>
public static class AgentUrl
{
    public static bool TryParse(string? text, out Uri url, out string error)
    {
        url = null!;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty agent URL (expected http://HOST:PORT)";
            return false;
        }
        var t = text.Trim();
        if (!t.Contains("://", StringComparison.Ordinal)) t = "http://" + t;
        if (!Uri.TryCreate(t, UriKind.Absolute, out var u) || string.IsNullOrEmpty(u.Host))
        {
            error = $"'{text}' is not an agent URL (expected http://HOST:PORT)";
            return false;
        }
        if (u.Scheme != Uri.UriSchemeHttp)
        {
            error = $"'{text}': only http:// agent URLs are supported";
            return false;
        }
        if (u.AbsolutePath != "/" || u.Query.Length > 0)
        {
            error = $"'{text}': an agent URL has no path (expected http://HOST:PORT)";
            return false;
        }
        if (u.IsDefaultPort && !t.Contains(":80", StringComparison.Ordinal))
        {
            error = $"'{text}': give the agent's port (http://HOST:PORT)";
            return false;
        }
        url = new Uri($"http://{u.Authority}");
        return true;
    }

    public static Uri Parse(string text) => TryParse(text, out var u, out var e) ? u : throw new ArgumentException(e);
}

/// <summary>A client of one agent's HTTP API (docs/migration.md).</summary>
public sealed class AgentClient : IDisposable
{
    private readonly HttpClient http;

    public AgentClient(Uri baseUrl, TimeSpan? timeout = null)
    {
        BaseUrl = baseUrl;
        http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5), PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
        {
            BaseAddress = baseUrl,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        RequestTimeout = timeout ?? TimeSpan.FromSeconds(120);
    }

    public Uri BaseUrl { get; }

    /// <summary>The URL as operators write it (no trailing slash), for messages.</summary>
    public string Display => BaseUrl.ToString().TrimEnd('/');

    /// <summary>Bound on ordinary requests (streaming requests are bounded by their caller).</summary>
    public TimeSpan RequestTimeout { get; }

    public Task<AgentInfo> InfoAsync(CancellationToken ct = default) => GetAsync("/v1/agent", AgentJson.Default.AgentInfo, ct);

    public Task<WorkloadInfo[]> ListAsync(CancellationToken ct = default) => GetAsync("/v1/workloads", AgentJson.Default.WorkloadInfoArray, ct);

    public Task<WorkloadInfo> GetAsync(string id, CancellationToken ct = default) =>
        GetAsync($"/v1/workloads/{Uri.EscapeDataString(id)}", AgentJson.Default.WorkloadInfo, ct);

    public Task<WorkloadInfo> CreateAsync(CreateWorkloadRequest request, CancellationToken ct = default) =>
        PostAsync("/v1/workloads", request, AgentJson.Default.CreateWorkloadRequest, AgentJson.Default.WorkloadInfo, ct);

    public Task<WorkloadInfo> StopAsync(string id, CancellationToken ct = default) =>
        PostAsync($"/v1/workloads/{Uri.EscapeDataString(id)}/stop", "", null, AgentJson.Default.WorkloadInfo, ct);

    public Task<PrepareMigrationResponse> PrepareAsync(PrepareMigrationRequest request, CancellationToken ct = default) =>
        PostAsync("/v1/migrations", request, AgentJson.Default.PrepareMigrationRequest, AgentJson.Default.PrepareMigrationResponse, ct);

    public Task<MigrationInfo> MigrationAsync(string migrationId, CancellationToken ct = default) =>
        GetAsync($"/v1/migrations/{Uri.EscapeDataString(migrationId)}", AgentJson.Default.MigrationInfo, ct);

    public Task<ResolveResponse> ResolveAsync(string migrationId, CancellationToken ct = default) =>
        PostAsync($"/v1/migrations/{Uri.EscapeDataString(migrationId)}/resolve", "", null, AgentJson.Default.ResolveResponse, ct);

    /// <summary>Checkpoints a running workload (its runtime writes the file on the agent's host, then ends); returns it checkpointed.</summary>
    public async Task<WorkloadInfo> CheckpointAsync(string id, CancellationToken ct = default)
    {
        // Writing GiBs of memory (sealing it, for a confidential workload) can outlast the usual request bound.
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"/v1/workloads/{Uri.EscapeDataString(id)}/checkpoint")
        {
            Content = new StringContent("{}", Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseContentRead, ct, bounded: false).ConfigureAwait(false);
        return await ReadAsync(response, AgentJson.Default.WorkloadInfo, ct).ConfigureAwait(false);
    }

    /// <summary>Copies a checkpointed workload's checkpoint file into <paramref name="destination"/>; returns its length.</summary>
    public async Task<long> DownloadCheckpointAsync(string id, Stream destination, CancellationToken ct = default)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"/v1/workloads/{Uri.EscapeDataString(id)}/checkpoint"),
            HttpCompletionOption.ResponseHeadersRead, ct, bounded: false).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var expected = response.Content.Headers.ContentLength;
        long copied = 0;
        var buffer = new byte[1 << 20];
        try
        {
            int n;
            while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await destination.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                copied += n;
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            throw new AgentUnreachableException($"lost the agent at {Display} while downloading the checkpoint: {e.Message}", e);
        }
        if (expected is { } length && copied != length)
        {
            throw new AgentUnreachableException($"the agent at {Display} sent {copied} of the checkpoint's {length} bytes");
        }
        return copied;
    }

    /// <summary>Uploads a checkpoint (plain or sealed) and starts a workload from it; returns it running. Consumes and disposes <paramref name="checkpoint"/>.</summary>
    public async Task<WorkloadInfo> RestoreAsync(Stream checkpoint, string? name = null, CancellationToken ct = default)
    {
        var url = "/v1/restores" + (string.IsNullOrWhiteSpace(name) ? "" : "?name=" + Uri.EscapeDataString(name));
        using var response = await SendAsync(() =>
        {
            // Streamed, not buffered: a checkpoint is as large as the guest's memory. The request disposes the stream.
            var content = new StreamContent(checkpoint, 1 << 20);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            return new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        }, HttpCompletionOption.ResponseContentRead, ct, bounded: false).ConfigureAwait(false);
        return await ReadAsync(response, AgentJson.Default.WorkloadInfo, ct).ConfigureAwait(false);
    }

    /// <summary>A log stream (stdout or stderr) from <paramref name="offset"/>; with follow, it ends when the runtime has.</summary>
    public async Task<Stream> LogsAsync(string id, string stream, bool follow, long offset = 0, CancellationToken ct = default)
    {
        var url = $"/v1/workloads/{Uri.EscapeDataString(id)}/logs?stream={stream}&follow={(follow ? "true" : "false")}&offset={offset}";
        var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, url), HttpCompletionOption.ResponseHeadersRead, ct, bounded: false).ConfigureAwait(false);
        return await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Starts a migration on the source agent and yields its events; the last one is "result".</summary>
    public async IAsyncEnumerable<MigrationEvent> MigrateAsync(string id, MigrateRequest request, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var body = AgentJson.Line(request, AgentJson.Default.MigrateRequest);
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, $"/v1/workloads/{Uri.EscapeDataString(id)}/migrations")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseHeadersRead, ct, bounded: false).ConfigureAwait(false);
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (true)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                throw new AgentUnreachableException($"lost the connection to the agent at {Display} during the migration: {e.Message}", e);
            }
            if (line is null) throw new AgentUnreachableException($"the agent at {Display} closed the event stream before the migration's result");
            if (line.Length == 0) continue;
            MigrationEvent? ev;
            try
            {
                ev = JsonSerializer.Deserialize(line, AgentJson.Default.MigrationEvent);
            }
            catch (JsonException e)
            {
                throw new IOException($"unreadable event from the agent at {Display}: {e.Message}");
            }
            if (ev is null) continue;
            yield return ev;
            if (ev.Event == "result") yield break;
        }
    }

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> info, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, path), HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
        return await ReadAsync(response, info, ct).ConfigureAwait(false);
    }

    private async Task<TOut> PostAsync<TIn, TOut>(string path, TIn body, JsonTypeInfo<TIn>? inInfo, JsonTypeInfo<TOut> outInfo, CancellationToken ct)
    {
        var json = inInfo is null ? "{}" : JsonSerializer.Serialize(body, inInfo);
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
        return await ReadAsync(response, outInfo, ct).ConfigureAwait(false);
    }

    private async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> info, CancellationToken ct)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync(info, ct).ConfigureAwait(false)
                ?? throw new IOException($"empty answer from the agent at {Display}");
        }
        catch (JsonException e)
        {
            throw new IOException($"unreadable answer from the agent at {Display}: {e.Message}");
        }
    }

    /// <summary>Sends a request; network failures become <see cref="AgentUnreachableException"/>, error answers <see cref="AgentErrorException"/>.</summary>
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> make, HttpCompletionOption completion, CancellationToken ct, bool bounded = true)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (bounded) cts.CancelAfter(RequestTimeout);
        HttpResponseMessage response;
        try
        {
            using var request = make();
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            response = await http.SendAsync(request, completion, bounded ? cts.Token : ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            var why = e.InnerException is SocketException s ? s.Message : e.Message;
            throw new AgentUnreachableException($"cannot reach the agent at {Display}: {why}", e);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new AgentUnreachableException($"the agent at {Display} did not answer within {RequestTimeout.TotalSeconds:0} s", e);
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            string message;
            try
            {
                message = JsonSerializer.Deserialize(text, AgentJson.Default.ErrorResponse)?.Error ?? text;
            }
            catch (JsonException)
            {
                message = text.Length > 0 ? text : response.ReasonPhrase ?? "error";
            }
            throw new AgentErrorException(response.StatusCode, $"agent {Display}: {message}");
        }
    }

    public void Dispose() => http.Dispose();
}
