using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Streams;
using Ferry.Agent.Workloads;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent;

/// <summary>
/// The per-host agent: an ASP.NET Core minimal API over its <see cref="WorkloadManager"/>, plus the migration
/// stream endpoint that upgrades an HTTP/1.1 connection and hands it to an incoming runtime
/// (<see cref="HandoffListenerFactory"/>), or with <see cref="AgentOptions.StreamHandoff"/> off pipes it there byte for byte.
/// The HTTP API is documented in docs/migration.md.
/// </summary>
public sealed class AgentServer : IAsyncDisposable
{
    /// <summary>The protocol name a migration stream asks for in its Upgrade header.</summary>
    public const string UpgradeProtocol = "ferry-migration/1";

    private readonly WebApplication app;
    private readonly WorkloadManager manager;

    /// <summary>The relay warm-up's stream target while it runs (see <see cref="RelayWarmup"/>), else null.</summary>
    private volatile RelayWarmup? warmup;

    private AgentServer(WebApplication app, WorkloadManager manager)
    {
        this.app = app;
        this.manager = manager;
    }

    public string Url { get; private set; } = "";

    /// <summary>
    /// Buffering per migration stream at each hop (kernel socket buffers, Kestrel's request buffer, the pipe):
    /// whatever is in flight when the guest freezes must drain before the destination is ready, so it counts
    /// as downtime; on loopback or a data-center network this much per stream still runs at full speed.
    /// </summary>
    public static readonly int StreamBufferBytes =
        int.TryParse(Environment.GetEnvironmentVariable("FERRY_STREAM_BUFFER_KB"), out var kb) && kb > 0 ? kb * 1024 : 256 * 1024;

    public WorkloadManager Workloads => manager;

    /// <summary>The relay warm-up started with the agent (<see cref="AgentOptions.WarmRelay"/>); completes, never fails.</summary>
    public Task<RelayWarmupResult> RelayWarmedUp { get; private set; } = Task.FromResult(new RelayWarmupResult(0, 0, TimeSpan.Zero, "not started"));

    /// <summary>Builds the agent, adopts the workloads in its state dir, and starts listening on <paramref name="listen"/>.</summary>
    public static async Task<AgentServer> StartAsync(AgentOptions options, IPEndPoint listen, CancellationToken ct)
    {
        Directory.CreateDirectory(options.StateDir);
        var manager = new WorkloadManager(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(listen);
            k.Limits.MaxRequestBodySize = 1L << 30;
            // Migration streams are piped through: buffer little, so little is in flight when a guest freezes.
            k.Limits.MaxRequestBufferSize = StreamBufferBytes;
            k.AddServerHeader = false;
        });
        builder.WebHost.UseSockets(o => o.CreateBoundListenSocket = endpoint => HandoffListenerFactory.BindListenSocket(endpoint, StreamBufferBytes));
        AgentServer? server = null;
        if (options.StreamHandoff)
        {
            // Replaces the sockets transport configured above (the same listen socket): see HandoffListenerFactory.
            builder.Services.RemoveAll<IConnectionListenerFactory>();
            builder.Services.AddSingleton<IConnectionListenerFactory>(sp => new HandoffListenerFactory(
                id => server?.DataSocketOf(id),
                new SocketConnectionFactoryOptions { MaxReadBufferSize = StreamBufferBytes },
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.Agent.Streams"),
                StreamBufferBytes));
        }
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, AgentJson.Default));
        var app = builder.Build();
        server = new AgentServer(app, manager);
        server.Map(app, options);
        await app.StartAsync(ct).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
        WorkloadDirectory.WriteAtomically(Path.Combine(options.StateDir, "agent.json"),
            new AgentInfo(options.Name, server.Url, Version, Environment.ProcessId, options.StateDir, manager.Count, TrackingMethods),
            AgentJson.Default.AgentInfo);
        // With streams handed over, no migration byte passes through the relay: nothing to warm up.
        if (options.StreamHandoff) server.RelayWarmedUp = Task.FromResult(new RelayWarmupResult(0, 0, TimeSpan.Zero, "not needed: migration streams are handed to their runtime"));
        else if (options.WarmRelay) server.RelayWarmedUp = server.WarmRelayAsync(app.Lifetime.ApplicationStopping);
        return server;
    }

    private async Task<RelayWarmupResult> WarmRelayAsync(CancellationToken ct)
    {
        await Task.Yield(); // the agent is up: answer requests while the warm-up runs
        var run = RelayWarmup.Create();
        warmup = run;
        RelayWarmupResult result;
        try
        {
            result = await run.RunAsync(new Uri(Url), ct).ConfigureAwait(false);
        }
        finally
        {
            warmup = null;
        }
        // Not when the agent is stopping (that ends the warm-up too, and the logger may be gone already).
        if (result.Error is not null && !ct.IsCancellationRequested)
        {
            app.Logger.LogWarning("relay warm-up failed (harmless; the first migration here may be slower): {Error}", result.Error);
        }
        return result;
    }

    public static string Version =>
        typeof(AgentServer).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>
    /// Tracking methods this host can use (<c>--tracking</c>): compiled tracking always; kernel tracking when this
    /// kernel and its permissions allow userfaultfd write protection with PAGEMAP_SCAN (probed once per process).
    /// </summary>
    public static string[] TrackingMethods =>
        Ferry.Enclave.Tracking.UserfaultfdSupport.Current.DirtyTrackingUnavailableReason is null ? ["compiler", "kernel"] : ["compiler"];

    public Task WaitForShutdownAsync(CancellationToken ct) => Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.WaitForShutdownAsync(app, ct);

    private void Map(WebApplication web, AgentOptions options)
    {
        web.Use(async (ctx, next) =>
        {
            try
            {
                await next(ctx).ConfigureAwait(false);
            }
            catch (AgentRequestException e) when (!ctx.Response.HasStarted)
            {
                await Error(ctx, e.Status, e.Message).ConfigureAwait(false);
            }
            catch (BadHttpRequestException e) when (!ctx.Response.HasStarted)
            {
                await Error(ctx, 400, e.Message).ConfigureAwait(false);
            }
            catch (JsonException e) when (!ctx.Response.HasStarted)
            {
                await Error(ctx, 400, "malformed JSON: " + e.Message).ConfigureAwait(false);
            }
        });

        var v1 = web.MapGroup("/v1");
        v1.MapGet("/agent", () => Results.Json(new AgentInfo(options.Name, Url, Version, Environment.ProcessId, options.StateDir, manager.Count, TrackingMethods), AgentJson.Default.AgentInfo));

        v1.MapPost("/workloads", async (HttpContext ctx) =>
        {
            var request = await ReadJson(ctx, AgentJson.Default.CreateWorkloadRequest).ConfigureAwait(false);
            var info = await manager.CreateAsync(request, ctx.RequestAborted).ConfigureAwait(false);
            return Results.Json(info, AgentJson.Default.WorkloadInfo, statusCode: 201);
        });
        v1.MapGet("/workloads", () => Results.Json(manager.List(), AgentJson.Default.WorkloadInfoArray));
        v1.MapGet("/workloads/{id}", (string id) => Results.Json(manager.Get(id), AgentJson.Default.WorkloadInfo));
        v1.MapPost("/workloads/{id}/stop", async (string id, HttpContext ctx) =>
            Results.Json(await manager.StopAsync(id, ctx.RequestAborted).ConfigureAwait(false), AgentJson.Default.WorkloadInfo));
        v1.MapGet("/workloads/{id}/logs", (string id, HttpContext ctx) => StreamLogAsync(id, ctx));
        v1.MapPost("/workloads/{id}/migrations", (string id, HttpContext ctx) => MigrateAsync(id, ctx));
        v1.MapPost("/workloads/{id}/checkpoint", async (string id, HttpContext ctx) =>
            Results.Json(await manager.CheckpointAsync(id, ctx.RequestAborted).ConfigureAwait(false), AgentJson.Default.WorkloadInfo));
        v1.MapGet("/workloads/{id}/checkpoint", (string id, HttpContext ctx) => DownloadCheckpointAsync(id, ctx));
        v1.MapPost("/restores", async (HttpContext ctx) =>
        {
            // A checkpoint is as large as the guest's memory, which may exceed the 1 GiB bound on other requests.
            if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = null;
            var info = await manager.RestoreAsync(ctx.Request.Body, ctx.Request.Query["name"].FirstOrDefault(), ctx.RequestAborted).ConfigureAwait(false);
            return Results.Json(info, AgentJson.Default.WorkloadInfo, statusCode: 201);
        });

        v1.MapPost("/migrations", async (HttpContext ctx) =>
        {
            var request = await ReadJson(ctx, AgentJson.Default.PrepareMigrationRequest).ConfigureAwait(false);
            var prepared = await manager.PrepareIncomingAsync(request, ctx.RequestAborted).ConfigureAwait(false);
            return Results.Json(prepared, AgentJson.Default.PrepareMigrationResponse, statusCode: 201);
        });
        v1.MapGet("/migrations/{id}", async (string id, HttpContext ctx) =>
            Results.Json(await manager.MigrationAsync(id, ctx.RequestAborted).ConfigureAwait(false), AgentJson.Default.MigrationInfo));
        v1.MapPost("/migrations/{id}/resolve", async (string id, HttpContext ctx) =>
            Results.Json(await manager.ResolveAsync(id, ctx.RequestAborted).ConfigureAwait(false), AgentJson.Default.ResolveResponse));
        v1.MapGet("/migrations/{id}/streams", (string id, HttpContext ctx) => ProxyStreamAsync(id, ctx));

        web.MapFallback((HttpContext ctx) => Error(ctx, 404, $"no such endpoint: {ctx.Request.Method} {ctx.Request.Path} (see docs/migration.md)"));
    }

    private static async Task<T> ReadJson<T>(HttpContext ctx, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(ctx.Request.Body, info, ctx.RequestAborted).ConfigureAwait(false)
                ?? throw new AgentRequestException(400, "empty request body");
        }
        catch (JsonException e)
        {
            throw new AgentRequestException(400, "malformed request: " + e.Message);
        }
    }

    private static Task Error(HttpContext ctx, int status, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(AgentJson.Line(new ErrorResponse(message), AgentJson.Default.ErrorResponse));
    }

    /// <summary>A log file from ?offset=N; with ?follow=true, keeps streaming (chunked) until the runtime has ended.</summary>
    private async Task StreamLogAsync(string id, HttpContext ctx)
    {
        var stream = ctx.Request.Query["stream"].FirstOrDefault() ?? "stdout";
        var follow = ctx.Request.Query["follow"].FirstOrDefault() is "true" or "1";
        long offset = 0;
        if (ctx.Request.Query["offset"].FirstOrDefault() is { } o && (!long.TryParse(o, out offset) || offset < 0))
        {
            throw new AgentRequestException(400, "offset must be a non-negative number");
        }
        var (path, alive) = manager.Log(id, stream);
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var buffer = new byte[64 * 1024];
        var ct = ctx.RequestAborted;
        try
        {
            await ctx.Response.StartAsync(ct).ConfigureAwait(false);
            while (!ct.IsCancellationRequested)
            {
                // Checked before reading: once the runtime is gone, one more read drains what it wrote.
                var ended = !follow || !alive();
                if (File.Exists(path))
                {
                    await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    file.Position = Math.Min(offset, file.Length);
                    int n;
                    while ((n = await file.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    {
                        await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        offset += n;
                    }
                    await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                }
                if (ended) break;
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The client went away.
        }
    }

    /// <summary>GET /v1/workloads/{id}/checkpoint: the checkpoint file as it lies on this host (sealed ones stay sealed).</summary>
    private async Task DownloadCheckpointAsync(string id, HttpContext ctx)
    {
        var path = manager.CheckpointFile(id);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        ctx.Response.ContentType = "application/octet-stream";
        ctx.Response.ContentLength = file.Length;
        await file.CopyToAsync(ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// Forwards a migrate request to the workload's runtime and relays its events as NDJSON. If this agent goes
    /// away meanwhile, the runtime carries on (it drives the migration); the client finds the outcome in the
    /// workload's status (lastMigration.requestId).
    /// </summary>
    private async Task MigrateAsync(string id, HttpContext ctx)
    {
        var request = await ReadJson(ctx, AgentJson.Default.MigrateRequest).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(request.To)) throw new AgentRequestException(400, "'to' (the destination agent's URL) is required");
        if (!MigrationNames.TryParseStrategy(request.Strategy, out _))
        {
            throw new AgentRequestException(400, $"unknown strategy '{request.Strategy}' ({string.Join(", ", MigrationNames.Strategies)})");
        }
        if (!MigrationNames.TryParseTracking(request.Tracking, out _))
        {
            throw new AgentRequestException(400, $"unknown tracking method '{request.Tracking}' ({string.Join(", ", MigrationNames.TrackingMethods)})");
        }
        request = request with { RequestId = request.RequestId ?? Guid.NewGuid().ToString(), From = $"{manager.Name} ({Url})" };
        await using var control = await manager.StartMigrationAsync(id, request, ctx.RequestAborted).ConfigureAwait(false);
        ctx.Response.ContentType = "application/x-ndjson";
        ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var ct = ctx.RequestAborted;
        try
        {
            await ctx.Response.StartAsync(ct).ConfigureAwait(false);
            while (true)
            {
                var line = await control.ReadLineAsync(ct).ConfigureAwait(false);
                if (line is null)
                {
                    var lost = new MigrationEvent
                    {
                        Event = "result",
                        RequestId = request.RequestId,
                        Ok = false,
                        Error = "the runtime closed its control connection before reporting a result (it may have died; see ferry ps)",
                    };
                    await ctx.Response.WriteAsync(AgentJson.Line(lost, AgentJson.Default.MigrationEvent) + "\n", ct).ConfigureAwait(false);
                    break;
                }
                await ctx.Response.WriteAsync(line + "\n", ct).ConfigureAwait(false);
                await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                if (line.Contains("\"event\":\"result\"", StringComparison.Ordinal)) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client or the runtime went away; the runtime still finishes (or abandons) the migration itself.
        }
    }

    /// <summary>
    /// GET /v1/migrations/{id}/streams with "Connection: Upgrade" and "Upgrade: ferry-migration/1": answers
    /// 101 and pipes the connection to the incoming runtime's data socket, both ways, until either side closes.
    /// </summary>
    private async Task ProxyStreamAsync(string id, HttpContext ctx)
    {
        var upgrade = ctx.Features.Get<IHttpUpgradeFeature>();
        if (upgrade is not { IsUpgradableRequest: true }
            || !string.Equals(ctx.Request.Headers.Upgrade.ToString(), UpgradeProtocol, StringComparison.OrdinalIgnoreCase))
        {
            ctx.Response.Headers.Upgrade = UpgradeProtocol;
            await Error(ctx, 426, $"migration streams need 'Connection: Upgrade' and 'Upgrade: {UpgradeProtocol}'").ConfigureAwait(false);
            return;
        }
        var socketPath = DataSocketOf(id)
            ?? throw new AgentRequestException(404, $"no incoming migration {id} is waiting for streams on agent {manager.Name}");
        var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { SendBufferSize = StreamBufferBytes / 2, ReceiveBufferSize = StreamBufferBytes / 2 };
        try
        {
            await unix.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            unix.Dispose();
            throw new AgentRequestException(503, $"the incoming runtime of migration {id} does not accept streams: {e.Message}");
        }
        try
        {
            await StreamHandoff.MarkRelayedAsync(unix, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            unix.Dispose();
            throw new AgentRequestException(503, $"the incoming runtime of migration {id} does not accept streams: {e.Message}");
        }
        ctx.Response.Headers.Upgrade = UpgradeProtocol;
        var network = await upgrade.UpgradeAsync().ConfigureAwait(false);
        await using var local = new NetworkStream(unix, ownsSocket: true);
        await PipeAsync(network, local).ConfigureAwait(false);
    }

    /// <summary>The data socket of the incoming runtime (or the relay warm-up) waiting for migration <paramref name="id"/>'s streams, or null.</summary>
    private string? DataSocketOf(string id) => (warmup is { } w && w.MigrationId == id ? w.SocketPath : null) ?? manager.DataSocketOf(id);

    /// <summary>Copies both ways until one side ends or fails, then closes both (the protocol never half-closes).</summary>
    private static async Task PipeAsync(Stream a, Stream b)
    {
        using var cts = new CancellationTokenSource();
        var up = CopyAsync(a, b, cts.Token);
        var down = CopyAsync(b, a, cts.Token);
        await Task.WhenAny(up, down).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
        try
        {
            await a.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
        try
        {
            await b.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
        }
        try
        {
            await Task.WhenAll(up, down).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A copy cut short by the close above.
        }
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await from.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
        manager.Dispose();
    }
}
