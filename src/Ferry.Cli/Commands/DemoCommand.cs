using System.CommandLine;
using System.Globalization;
using Ferry.Agent.Api;
using Ferry.Agent.Client;
using Ferry.Migration;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry demo`: the README's main job. Two agents on loopback (two "hosts"), a suite workload with 1 GiB of
/// memory, migrated with stop-and-copy and back with pre-copy while it runs; a comparison of their downtime,
/// and a check that the program ends exactly as an uninterrupted run does.
/// </summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var workload = new Option<string>("--workload") { Description = "Suite program to migrate", DefaultValueFactory = _ => "kvstore" };
        var mem = new Option<string>("--mem") { Description = "Its memory size", DefaultValueFactory = _ => "1G" };
        var seconds = new Option<int>("--seconds") { Description = "How long it runs in all", DefaultValueFactory = _ => 40 };
        var command = new Command("demo", "Live-migrate a 1 GiB workload between two local agents: stop-and-copy vs pre-copy") { workload, mem, seconds };
        command.SetAction((parse, ct) => RunAsync(parse.GetValue(workload)!, parse.GetValue(mem)!, parse.GetValue(seconds), ct));
        return command;
    }

    private static async Task<int> RunAsync(string name, string mem, int seconds, CancellationToken ct)
    {
        var repo = LocalAgents.RepoRoot();
        if (repo is null)
        {
            Console.Error.WriteLine("ferry demo: needs the Ferry repository (its workloads/ directory); run it as ./ferry demo from a checkout");
            return ExitCodes.Failure;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = Console.IsOutputRedirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = Console.IsOutputRedirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        if (Console.IsOutputRedirected) console.Profile.Width = 120;
        string wasm;
        try
        {
            wasm = LocalAgents.EnsureWorkload(repo, name);
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"ferry demo: {e.Message}");
            return ExitCodes.Failure;
        }
        console.MarkupLine("[bold]Ferry demo:[/] live migration of a running WebAssembly workload between two hosts");
        using var agents = new LocalAgents("ferry-demo-");
        console.MarkupLine($"  host [green]alpha[/]: agent at {agents.A.Display}    host [green]beta[/]: agent at {agents.B.Display}");
        string[] args = ["--mem", mem, "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--progress", "1"];
        var w = await LocalAgents.RunAsync(agents.A, wasm, args);
        console.MarkupLine($"  workload [yellow]{w.Id}[/]: {name} {string.Join(' ', args)}  (on alpha; initialising {mem} of memory …)");
        if (!await LocalAgents.WaitForLineAsync(agents.A, w.Id, "progress ", TimeSpan.FromMinutes(2)))
        {
            Console.Error.WriteLine($"ferry demo: {name} ended before it started working; see {agents.Root}");
            return ExitCodes.Failure;
        }

        var results = new List<(string Label, MigrationEvent Result)>();
        foreach (var (label, from, to, strategy) in new[]
        {
            ("stop-and-copy alpha → beta", agents.A, agents.B, "stopcopy"),
            ("pre-copy beta → alpha", agents.B, agents.A, "precopy"),
        })
        {
            console.MarkupLine($"\n[bold]{label}[/] (the program keeps running{(strategy == "stopcopy" ? " — until it is frozen for the copy" : " while its memory is copied")})");
            var request = new MigrateRequest { To = to.Display, Strategy = strategy, RequestId = Guid.NewGuid().ToString() };
            var lastKey = "";
            var result = await MigrateCommand.RunAsync(from, w.Id, request, showProgress: !Console.IsErrorRedirected, ct,
                Console.IsErrorRedirected ? ev => PrintPlain(ev, ref lastKey) : null);
            if (result.Ok != true)
            {
                Console.Error.WriteLine($"ferry demo: the migration failed: {result.Error}");
                return ExitCodes.Failure;
            }
            results.Add((label, result));
            var r = result.Report!;
            console.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"  done: downtime [bold]{r.DowntimeMs:0.0} ms[/], total {r.TotalMs / 1000:0.00} s"));
        }

        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("migration").AddColumn(new TableColumn("downtime").RightAligned()).AddColumn(new TableColumn("total time").RightAligned())
            .AddColumn(new TableColumn("transferred").RightAligned()).AddColumn(new TableColumn("rounds").RightAligned()).AddColumn(new TableColumn("re-sent pages").RightAligned());
        foreach (var (label, result) in results)
        {
            var r = result.Report!;
            table.AddRow(label, string.Create(CultureInfo.InvariantCulture, $"{r.DowntimeMs:0.0} ms"), string.Create(CultureInfo.InvariantCulture, $"{r.TotalMs / 1000:0.00} s"),
                RemoteCommands.FormatBytes((ulong)r.BytesSent), r.Rounds.ToString(CultureInfo.InvariantCulture), r.ResentPages.ToString("N0", CultureInfo.InvariantCulture));
        }
        console.WriteLine();
        console.Write(table);

        console.MarkupLine($"\nwaiting for {name} to finish on alpha …");
        var output = await LocalAgents.WaitForEndAsync(agents.A, w.Id, TimeSpan.FromMinutes(3));
        var ops = LocalAgents.OpsOf(output);
        var reference = ops is { } n ? LocalAgents.NativeReference(repo, name, ["--mem", mem], n) : null;
        var sameResult = reference is not null && reference == output;

        MigrationReport stop = results[0].Result.Report!, pre = results[1].Result.Report!;
        var less = stop.DowntimeMs > 0 ? 100 * (1 - pre.DowntimeMs / stop.DowntimeMs) : 0;
        console.WriteLine();
        console.MarkupLine("[bold]What this showed[/]");
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"  Stop-and-copy (what TEE workloads get today) froze {name} for {stop.DowntimeMs:0} ms: its whole {RemoteCommands.FormatBytes(stop.MemoryBytes)} had to cross while it stood still."));
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
            $"  Pre-copy copied that memory while it ran ({pre.Rounds} rounds, {pre.ResentPages:N0} pages sent again after being rewritten) and froze it for only {pre.DowntimeMs:0.0} ms: {less:0.0}% less downtime, for {pre.TotalMs / stop.TotalMs:0.0}× the total time."));
        if (sameResult)
        {
            console.MarkupLine($"  After two migrations it finished with [green]{output.Trim().Split('\n')[^1]}[/] — identical to an uninterrupted native run of {ops:N0} operations.");
        }
        else if (reference is null)
        {
            console.MarkupLine($"  It finished with: {Markup.Escape(output.Trim())} (no native build to compare with).");
        }
        else
        {
            console.MarkupLine($"  [red]Its result differs from an uninterrupted run[/]: {Markup.Escape(output.Trim())} vs {Markup.Escape(reference.Trim())}");
            return ExitCodes.Failure;
        }
        return ExitCodes.Ok;
    }

    /// <summary>Without a terminal: one line per round instead of a progress bar.</summary>
    private static void PrintPlain(MigrationEvent ev, ref string lastKey)
    {
        if (ev.Event != "progress" || ev.Phase is not { } phase || phase == "state") return;
        var key = $"{phase}/{ev.Round}";
        if (key == lastKey) return;
        lastKey = key;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {phase} round {ev.Round}: {ev.PagesPlanned:N0} pages ({ev.BytesSent >> 20} MiB sent so far)"));
    }
}
