using System.CommandLine;
using System.Globalization;
using Ferry.Agent.Api;
using Ferry.Agent.Client;

namespace Ferry.Cli.Commands;

/// <summary>`ferry ps|logs|stop --on URL` and `ferry run --on URL`: workloads on an agent.</summary>
public static class RemoteCommands
{
    public static Option<string> OnOption() => new("--on") { Description = "The agent's URL, e.g. http://127.0.0.1:7001", Required = true };

    /// <summary>Runs <paramref name="body"/> against an agent, turning the usual failures into messages and exit codes.</summary>
    public static async Task<int> WithAgentAsync(string command, string url, Func<AgentClient, Task<int>> body)
    {
        if (!AgentUrl.TryParse(url, out var uri, out var why))
        {
            Console.Error.WriteLine($"ferry {command}: {why}");
            return ExitCodes.Usage;
        }
        using var client = new AgentClient(uri);
        try
        {
            return await body(client);
        }
        catch (AgentUnreachableException e)
        {
            Console.Error.WriteLine($"ferry {command}: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (AgentErrorException e)
        {
            Console.Error.WriteLine($"ferry {command}: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"ferry {command}: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    public static Command Ps()
    {
        var on = OnOption();
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("ps", "List the workloads on an agent") { on, json };
        command.SetAction((parse, ct) => WithAgentAsync("ps", parse.GetValue(on)!, async client =>
        {
            var list = await client.ListAsync(ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(AgentJson.Pretty(list, AgentJson.Default.WorkloadInfoArray));
                return ExitCodes.Ok;
            }
            var rows = list.Select(w => new[]
            {
                w.Id, w.Name, w.State, w.Host, FormatBytes(w.MemoryBytes), FormatUptime(w.UptimeSeconds),
                w.Confidential ? $"yes {(w.Measurement is { Length: >= 12 } m ? m[..12] : w.Measurement ?? "")}" : "no",
                w.State == WorkloadStates.MigratedAway ? $"to {w.MigratedTo}" : w.MigratedFrom is { } from ? $"from {from}" : w.Message ?? "",
            }).ToList();
            PrintTable(["ID", "NAME", "STATE", "HOST", "MEMORY", "UPTIME", "CONFIDENTIAL", "NOTE"], rows);
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Logs()
    {
        var id = new Argument<string>("id") { Description = "The workload's id" };
        var on = OnOption();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing output as it comes, until the workload ends here" };
        var stream = new Option<string>("--stream") { Description = "stdout, stderr or both (default: both, each to its own stream)", DefaultValueFactory = _ => "both" };
        var command = new Command("logs", "Print a workload's output (stdout to stdout, stderr to stderr)") { id, on, follow, stream };
        command.SetAction((parse, ct) =>
        {
            var which = parse.GetValue(stream)!;
            if (which is not ("stdout" or "stderr" or "both"))
            {
                Console.Error.WriteLine($"ferry logs: --stream: expected stdout, stderr or both, got '{which}'");
                return Task.FromResult(ExitCodes.Usage);
            }
            return WithAgentAsync("logs", parse.GetValue(on)!, async client =>
            {
                var workload = parse.GetValue(id)!;
                var copies = new List<Task>();
                if (which is "stdout" or "both") copies.Add(CopyLogAsync(client, workload, "stdout", parse.GetValue(follow), Console.OpenStandardOutput(), ct));
                if (which is "stderr" or "both") copies.Add(CopyLogAsync(client, workload, "stderr", parse.GetValue(follow), Console.OpenStandardError(), ct));
                await Task.WhenAll(copies);
                return ExitCodes.Ok;
            });
        });
        return command;
    }

    private static async Task CopyLogAsync(AgentClient client, string id, string stream, bool follow, Stream to, CancellationToken ct)
    {
        await using var from = await client.LogsAsync(id, stream, follow, 0, ct);
        var buffer = new byte[16384];
        int n;
        try
        {
            while ((n = await from.ReadAsync(buffer, ct)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), ct);
                await to.FlushAsync(ct);
            }
        }
        catch (HttpRequestException e)
        {
            throw new AgentUnreachableException($"lost the agent at {client.Display} while following the log: {e.Message}", e);
        }
    }

    public static Command Stop()
    {
        var id = new Argument<string>("id") { Description = "The workload's id" };
        var on = OnOption();
        var command = new Command("stop", "Stop a workload") { id, on };
        command.SetAction((parse, ct) => WithAgentAsync("stop", parse.GetValue(on)!, async client =>
        {
            var w = await client.StopAsync(parse.GetValue(id)!, ct);
            Console.WriteLine($"{w.Id} {w.State}");
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>`ferry run --on URL module.wasm [args]`: uploads the module and starts it on the agent; prints the id.</summary>
    public static int Run(string url, string modulePath, string[] args, ulong? memMax, List<string> env, string? name, bool confidential = false)
    {
        byte[] module;
        try
        {
            module = File.ReadAllBytes(modulePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry run: {modulePath}: {e.Message}");
            return ExitCodes.Failure;
        }
        return WithAgentAsync("run", url, async client =>
        {
            var w = await client.CreateAsync(new CreateWorkloadRequest
            {
                Name = name,
                ModuleName = Path.GetFileName(modulePath),
                ModuleBase64 = Convert.ToBase64String(module),
                Args = args,
                Env = [.. env],
                MemoryLimitBytes = memMax,
                Confidential = confidential,
            });
            Console.Error.WriteLine($"ferry run: started {w.Name} as {w.Id} on {w.Host} ({w.State})"
                + (w.Measurement is { } m ? $", confidential, measurement {m}" : ""));
            Console.WriteLine(w.Id);
            return ExitCodes.Ok;
        }).GetAwaiter().GetResult();
    }

    public static string FormatBytes(ulong bytes) => bytes switch
    {
        >= 1UL << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 30):0.##} GiB"),
        >= 1UL << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1UL << 20):0.#} MiB"),
        >= 1UL << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes >> 10} KiB"),
        _ => $"{bytes} B",
    };

    public static string FormatUptime(double seconds) => seconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{seconds:0}s"),
        < 3600 => $"{(int)seconds / 60}m{(int)seconds % 60:00}s",
        _ => $"{(int)seconds / 3600}h{(int)seconds % 3600 / 60:00}m",
    };

    public static void PrintTable(string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        Console.WriteLine(Line(header));
        foreach (var r in rows) Console.WriteLine(Line(r));
    }
}
