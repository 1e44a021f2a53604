using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using Ferry.Agent.Api;
using Ferry.Agent.Client;
using Ferry.Migration;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>What `ferry migrate --json` prints: the outcome and, when it succeeded, the report.</summary>
public sealed record MigrateOutput
{
    public required string Workload { get; init; }
    public required string From { get; init; }
    public required string To { get; init; }
    public required bool Succeeded { get; init; }
    public string? Error { get; init; }
    public bool? SourceResumed { get; init; }
    public bool? WorkloadEnded { get; init; }
    public MigrationReport? Report { get; init; }
}

[JsonSerializable(typeof(MigrateOutput))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
internal sealed partial class MigrateJson : JsonSerializerContext;

/// <summary>
/// `ferry migrate ID --from URL --to URL`: asks the source agent to migrate a workload, shows progress, and
/// reports downtime, total time, bytes and rounds. If the source agent goes away meanwhile, the migration goes
/// on in the workload's runtime; this command waits for the agent to come back and reads the outcome there.
/// </summary>
public static class MigrateCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("id") { Description = "The workload's id" };
        var from = new Option<string>("--from") { Description = "The source agent's URL", Required = true };
        var to = new Option<string>("--to") { Description = "The destination agent's URL (every byte of the migration goes through it)", Required = true };
        var strategy = new Option<string>("--strategy") { Description = "stopcopy, precopy, postcopy or hybrid", DefaultValueFactory = _ => "precopy" };
        var tracking = new Option<string>("--tracking") { Description = "How dirtied pages are found (pre-copy, hybrid) and missing pages served (post-copy): compiler (instrumented loads and stores) or kernel (userfaultfd)", DefaultValueFactory = _ => "compiler" };
        var downtime = new Option<double>("--downtime-target") { Description = "Pre-copy stops iterating once the rest fits this many milliseconds", DefaultValueFactory = _ => 20 };
        var streams = new Option<int>("--streams") { Description = "Parallel page streams", DefaultValueFactory = _ => 4 };
        var maxRounds = new Option<int?>("--max-rounds") { Description = "Upper bound on pre-copy rounds (default 30)" };
        var autoConverge = new Option<bool>("--auto-converge")
        {
            Description = "Pre-copy: when rounds stop shrinking, keep the guest frozen for a growing share of the time (30–99 %) until they do",
            DefaultValueFactory = _ => true,
        };
        var json = new Option<bool>("--json") { Description = "Print the outcome and report as JSON on stdout" };
        var command = new Command("migrate", "Live-migrate a workload from one agent to another")
        {
            id, from, to, strategy, tracking, downtime, streams, maxRounds, autoConverge, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            string Usage(string message)
            {
                Console.Error.WriteLine($"ferry migrate: {message}");
                return message;
            }
            var s = parse.GetValue(strategy)!;
            var t = parse.GetValue(tracking)!;
            if (!MigrationNames.TryParseStrategy(s, out _))
            {
                Usage($"--strategy: unknown strategy '{s}' ({string.Join(", ", MigrationNames.Strategies)})");
                return ExitCodes.Usage;
            }
            if (!MigrationNames.TryParseTracking(t, out _))
            {
                Usage($"--tracking: unknown method '{t}' ({string.Join(", ", MigrationNames.TrackingMethods)})");
                return ExitCodes.Usage;
            }
            if (!AgentUrl.TryParse(parse.GetValue(from), out var source, out var why) || !AgentUrl.TryParse(parse.GetValue(to), out var destination, out why))
            {
                Usage(why);
                return ExitCodes.Usage;
            }
            if (source == destination)
            {
                Usage("--from and --to name the same agent");
                return ExitCodes.Usage;
            }
            if (parse.GetValue(downtime) < 0 || parse.GetValue(streams) is < 1 or > 32 || parse.GetValue(maxRounds) is < 1)
            {
                Usage("--downtime-target must be ≥ 0, --streams 1..32, --max-rounds ≥ 1");
                return ExitCodes.Usage;
            }
            var request = new MigrateRequest
            {
                To = destination.ToString().TrimEnd('/'),
                Strategy = s,
                Tracking = t,
                DowntimeTargetMs = parse.GetValue(downtime),
                Streams = parse.GetValue(streams),
                MaxRounds = parse.GetValue(maxRounds),
                AutoConverge = parse.GetValue(autoConverge),
                RequestId = Guid.NewGuid().ToString(),
            };
            var workload = parse.GetValue(id)!;
            using var client = new AgentClient(source);
            MigrationEvent result;
            try
            {
                result = await RunAsync(client, workload, request, showProgress: !Console.IsErrorRedirected, ct);
            }
            catch (AgentErrorException e)
            {
                Console.Error.WriteLine($"ferry migrate: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (AgentUnreachableException e)
            {
                Console.Error.WriteLine($"ferry migrate: {e.Message}");
                return ExitCodes.Failure;
            }
            var output = new MigrateOutput
            {
                Workload = workload,
                From = source.ToString().TrimEnd('/'),
                To = request.To,
                Succeeded = result.Ok == true,
                Error = result.Error,
                SourceResumed = result.Ok == true ? null : result.SourceResumed,
                WorkloadEnded = result.WorkloadEnded == true ? true : null,
                Report = result.Report,
            };
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(output, MigrateJson.Default.MigrateOutput));
                if (!output.Succeeded) Console.Error.WriteLine($"ferry migrate: {output.Error}");
            }
            else
            {
                PrintHuman(output);
            }
            return output.Succeeded ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return command;
    }

    /// <summary>
    /// Starts the migration and follows it to its result; if the source agent is lost on the way, waits (bounded)
    /// for it to come back and reads the outcome from the workload's status.
    /// </summary>
    public static async Task<MigrationEvent> RunAsync(AgentClient client, string workload, MigrateRequest request, bool showProgress, CancellationToken ct,
        Action<MigrationEvent>? onEvent = null)
    {
        try
        {
            if (showProgress) return await WithProgressBarAsync(client, workload, request, onEvent, ct);
            await foreach (var ev in client.MigrateAsync(workload, request, ct))
            {
                onEvent?.Invoke(ev);
                if (ev.Event == "result") return ev;
            }
        }
        catch (AgentUnreachableException e)
        {
            Console.Error.WriteLine($"ferry migrate: {e.Message}");
            Console.Error.WriteLine("ferry migrate: the migration is driven by the workload's runtime and goes on; waiting for the source agent to report its outcome");
        }
        return await RecoverAsync(client, workload, request.RequestId!, ct);
    }

    private static async Task<MigrationEvent> RecoverAsync(AgentClient client, string workload, string requestId, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var limit = TimeSpan.FromMinutes(10);
        while (deadline.Elapsed < limit)
        {
            WorkloadInfo w;
            try
            {
                w = await client.GetAsync(workload, ct);
            }
            catch (AgentUnreachableException)
            {
                await Task.Delay(250, ct);
                continue;
            }
            if (w.LastMigration is { } last && last.RequestId == requestId)
            {
                return new MigrationEvent
                {
                    Event = "result",
                    RequestId = requestId,
                    MigrationId = last.MigrationId,
                    Ok = last.Succeeded,
                    Error = last.Error,
                    SourceResumed = last.SourceResumed,
                    WorkloadEnded = last.WorkloadEnded,
                    Report = last.Report,
                };
            }
            // Not ours in progress, not ours finished: the request never reached the runtime (once it has, the
            // runtime records it as in progress before anything else, and as finished when it is over).
            if (w.Migrating?.RequestId != requestId)
            {
                return new MigrationEvent
                {
                    Event = "result",
                    RequestId = requestId,
                    Ok = false,
                    SourceResumed = true,
                    Error = $"the migration never started: the source agent went away before passing the request on (workload {w.Id} is {w.State})",
                };
            }
            await Task.Delay(250, ct);
        }
        throw new AgentUnreachableException($"no outcome from the agent at {client.Display} within {limit.TotalMinutes:0} minutes");
    }

    private static async Task<MigrationEvent> WithProgressBarAsync(AgentClient client, string workload, MigrateRequest request, Action<MigrationEvent>? onEvent, CancellationToken ct)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        MigrationEvent? result = null;
        await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .StartAsync(async progress =>
            {
                ProgressTask? task = null;
                var key = "";
                long roundStart = 0;
                await foreach (var ev in client.MigrateAsync(workload, request, ct))
                {
                    onEvent?.Invoke(ev);
                    if (ev.Event == "result")
                    {
                        if (task is not null && ev.Ok == true) task.Value = task.MaxValue;
                        task?.StopTask();
                        result = ev;
                        return;
                    }
                    if (ev.Event != "progress" || ev.Phase is null || ev.Phase is "state" or "scan") continue;
                    var k = $"{ev.Phase}/{ev.Round}";
                    if (k != key)
                    {
                        if (task is not null)
                        {
                            task.Value = task.MaxValue;
                            task.StopTask();
                        }
                        key = k;
                        roundStart = ev.BytesSent;
                        var label = ev.Phase switch
                        {
                            "pre-copy" => $"round {ev.Round} (guest running)",
                            "final" => $"round {ev.Round} (guest frozen)",
                            _ => "post-copy push",
                        };
                        task = progress.AddTask(label, maxValue: Math.Max(1, ev.PagesPlanned * 4096.0));
                    }
                    task!.Value = Math.Min(task.MaxValue, ev.BytesSent - roundStart);
                }
            });
        return result ?? throw new AgentUnreachableException($"the agent at {client.Display} ended the event stream without a result");
    }

    private static void PrintHuman(MigrateOutput o)
    {
        if (!o.Succeeded)
        {
            Console.Error.WriteLine($"ferry migrate: {o.Error}");
            Console.Error.WriteLine(o.WorkloadEnded == true
                ? $"ferry migrate: workload {o.Workload} ended on {o.From} before it could be moved (see ferry logs {o.Workload} --on {o.From})"
                : o.SourceResumed == true
                ? $"ferry migrate: workload {o.Workload} continues on {o.From} as if nothing happened"
                : $"ferry migrate: workload {o.Workload} no longer runs on {o.From}; see `ferry ps --on {o.To}`");
            return;
        }
        var r = o.Report!;
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine($"migrated {o.Workload} from {o.From} to {o.To}");
        Console.WriteLine(string.Create(c, $"  strategy     {MigrationNames.Name(r.Strategy)} ({MigrationNames.Name(r.Tracking)} tracking), memory {RemoteCommands.FormatBytes(r.MemoryBytes)}"));
        Console.WriteLine(string.Create(c, $"  downtime     {r.DowntimeMs:0.###} ms (freeze latency {r.FreezeLatencyMs:0.###} ms)"));
        if (r.DowntimeParts is { } p)
        {
            Console.WriteLine(string.Create(c, $"               collect {p.CollectMs:0.0} + last pages {p.FinalPagesMs:0.0} + state {p.StateMs:0.0} + destination ready {p.ReadyMs:0.0} + commit {p.CommitMs:0.0} ms"));
        }
        Console.WriteLine(string.Create(c, $"  total time   {r.TotalMs:0} ms"));
        Console.WriteLine(string.Create(c, $"  transferred  {RemoteCommands.FormatBytes((ulong)r.BytesSent)} in {r.Rounds} round(s), {r.PagesSent:N0} pages ({r.ResentPages:N0} re-sent), {r.BandwidthMBps:0} MiB/s"));
        if (r.AutoConvergeShare > 0)
        {
            Console.WriteLine(string.Create(c, $"  converge     guest throttled up to {r.AutoConvergeShare:P0} of the time, {r.ThrottledMs:0} ms frozen in all while the rounds ran"));
        }
        if (r.Strategy is Migration.Protocol.Strategy.PostCopy or Migration.Protocol.Strategy.Hybrid)
        {
            var f = r.FaultLatency;
            Console.WriteLine(string.Create(c, $"  post-copy    {r.PostCopyFaults} faults{(f is { Count: > 0 } ? $", latency median {f.MedianMs:0.###} ms, p99 {f.P99Ms:0.###} ms, max {f.MaxMs:0.###} ms" : "")}; all pages delivered in {r.PostCopyMs:0} ms"));
        }
        if (r.Note is { } note) Console.WriteLine($"  note         {note}");
    }
}
