using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Ferry.Agent;
using Ferry.Agent.Workloads;

namespace Ferry.Cli.Commands;

/// <summary>`ferry agent --listen ADDR:PORT --name NAME --state-dir DIR`: the per-host daemon.</summary>
public static class AgentCommand
{
    public static Command Create()
    {
        var listen = new Option<string>("--listen") { Description = "Address and port to serve the HTTP API on, e.g. 127.0.0.1:7001 or 0.0.0.0:7001 (port 0: any free port)", Required = true };
        var name = new Option<string>("--name") { Description = "This host's name, as `ferry ps` shows it", Required = true };
        var stateDir = new Option<string>("--state-dir") { Description = "Where workloads live (re-adopted when the agent restarts)", Required = true };
        var trust = new Option<string?>("--trust")
        {
            Description = "The fleet trust file confidential workloads attest against (default STATE-DIR/trust.json; build it from every host's `ferry attest` entry)",
        };
        var standby = new Option<bool>("--standby")
        {
            Description = "Keep one runtime process started and warmed up for the next incoming migration (it saves the destination's process start and JIT warm-up, ~0.5 s, on every migration here; costs one idle process)",
            DefaultValueFactory = _ => true,
        };
        var warmRelay = new Option<bool>("--warm-relay")
        {
            Description = "With --stream-handoff false: at start, send traffic through this agent's own migration-stream relay once, so its code is compiled before a migration's switch-over needs it (about a second, a few MiB over loopback)",
            DefaultValueFactory = _ => true,
        };
        var streamHandoff = new Option<bool>("--stream-handoff")
        {
            Description = "Hand each incoming migration stream's connection to the destination runtime, so the source and destination runtimes talk directly (false: the agent relays every byte; docs/migration.md)",
            DefaultValueFactory = _ => true,
        };
        var command = new Command("agent", "Run the per-host agent: starts workload processes and takes part in migrations") { listen, name, stateDir, trust, standby, warmRelay, streamHandoff };
        command.SetAction(async (parse, ct) =>
        {
            if (!TryParseEndpoint(parse.GetValue(listen)!, out var endpoint, out var why))
            {
                Console.Error.WriteLine($"ferry agent: --listen: {why}");
                return ExitCodes.Usage;
            }
            var agentName = parse.GetValue(name)!.Trim();
            if (agentName.Length == 0)
            {
                Console.Error.WriteLine("ferry agent: --name must not be empty");
                return ExitCodes.Usage;
            }
            var options = new AgentOptions
            {
                Name = agentName,
                StateDir = Path.GetFullPath(parse.GetValue(stateDir)!),
                FerryCommand = FerryCommand(),
                TrustFile = parse.GetValue(trust) is { Length: > 0 } t ? Path.GetFullPath(t) : null,
                Standby = parse.GetValue(standby),
                WarmRelay = parse.GetValue(warmRelay),
                StreamHandoff = parse.GetValue(streamHandoff),
            };
            AgentServer server;
            try
            {
                server = await AgentServer.StartAsync(options, endpoint, ct);
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException or SocketException)
            {
                Console.Error.WriteLine($"ferry agent: cannot start on {endpoint}: {e.Message}");
                return ExitCodes.Failure;
            }
            await using (server)
            {
                Console.WriteLine($"ferry agent {agentName} listening on {server.Url} (state {options.StateDir}, {server.Workloads.Count} workloads)");
                await server.WaitForShutdownAsync(CancellationToken.None);
                Console.Error.WriteLine($"ferry agent {agentName}: shutting down (workloads keep running)");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>How to start this same CLI again: dotnet + ferry.dll, or the apphost alone.</summary>
    public static IReadOnlyList<string> FerryCommand()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell how this process was started");
        var dll = Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(host) == "dotnet" && !string.IsNullOrEmpty(dll) ? [host, dll] : [host];
    }

    public static bool TryParseEndpoint(string text, out IPEndPoint endpoint, out string why)
    {
        endpoint = null!;
        why = "";
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], out var port) || port is < 0 or > 65535)
        {
            why = $"expected ADDRESS:PORT, got '{text}'";
            return false;
        }
        var host = text[..colon].Trim('[', ']');
        if (host == "localhost") host = "127.0.0.1";
        if (!IPAddress.TryParse(host, out var address))
        {
            why = $"'{host}' is not an IP address (use e.g. 127.0.0.1 or 0.0.0.0)";
            return false;
        }
        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
