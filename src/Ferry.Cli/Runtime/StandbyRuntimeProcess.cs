using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Workloads;

namespace Ferry.Cli.Runtime;

/// <summary>
/// `ferry runtime standby --dir DIR`: a runtime process that starts before it has a workload, compiles the migration
/// path (<see cref="MigrationWarmup"/>) and waits on DIR/adopt.sock until its agent hands it an incoming migration's
/// workload directory; from then on it is that workload's incoming runtime. The agent's side and the protocol are
/// described on <see cref="StandbyRuntime"/>. Exits by itself when its agent is gone.
/// </summary>
internal static class StandbyRuntimeProcess
{
    /// <summary>Checks on the agent; a static root, because a timer nothing references is collected and stops.</summary>
    private static Timer? agentWatch;

    public static int Run(string path)
    {
        path = Path.GetFullPath(path);
        _ = MigrationWarmup.Start();
        WarmBookkeeping(path);
        var agentPid = int.TryParse(Environment.GetEnvironmentVariable(StandbyRuntime.AgentPidVariable), CultureInfo.InvariantCulture, out var p) ? p : 0;
        agentWatch = agentPid > 0 ? new Timer(_ =>
        {
            if (!AgentAlive(agentPid)) Environment.Exit(0);
        }, null, 500, 500) : null;
        string target;
        try
        {
            var socketPath = Path.Combine(path, StandbyRuntime.AdoptSocketName);
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            listener.Listen(4);
            while (true)
            {
                using var connection = listener.Accept();
                connection.ReceiveTimeout = 5000;
                connection.SendTimeout = 5000;
                string? why;
                try
                {
                    target = ReadLine(connection);
                    why = Refusal(target);
                }
                catch (Exception e) when (e is SocketException or IOException)
                {
                    continue;
                }
                if (why is null)
                {
                    // Adopted: from here on this process belongs to the workload, which outlives its agent.
                    agentWatch?.Dispose();
                    agentWatch = null;
                    connection.Send(Encoding.UTF8.GetBytes(StandbyRuntime.Accepted + "\n"));
                    break;
                }
                connection.Send(Encoding.UTF8.GetBytes($"refused: {why}\n"));
            }
            File.Delete(Path.Combine(target, StandbyRuntime.AdoptSocketName));
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            Console.Error.WriteLine($"[ferry-runtime] standby in {path}: {e.Message}");
            return 1;
        }
        finally
        {
            agentWatch?.Dispose();
        }
        return WorkloadRuntime.Run("incoming", target);
    }

    /// <summary>One line (the workload directory), at most 4 KiB.</summary>
    private static string ReadLine(Socket connection)
    {
        var buffer = new byte[4096];
        var length = 0;
        while (length < buffer.Length)
        {
            var n = connection.Receive(buffer, length, buffer.Length - length, SocketFlags.None);
            if (n == 0) break;
            length += n;
            var newline = Array.IndexOf(buffer, (byte)'\n', 0, length);
            if (newline >= 0) return Encoding.UTF8.GetString(buffer, 0, newline);
        }
        throw new IOException("no complete line");
    }

    /// <summary>Why <paramref name="target"/> is not a workload directory prepared for an incoming migration (null: it is).</summary>
    private static string? Refusal(string target)
    {
        if (!Path.IsPathFullyQualified(target) || !Directory.Exists(target)) return $"{target} is not a directory";
        try
        {
            var spec = new WorkloadDirectory(target).ReadSpec();
            return spec.Mode == "incoming" ? null : $"{target} is not an incoming migration ({spec.Mode})";
        }
        catch (InvalidDataException e)
        {
            return e.Message;
        }
    }

    private static bool AgentAlive(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0').Contains("agent");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// The incoming runtime's own bookkeeping before it acknowledges the setup (spec and status files, the launch
    /// arguments' JSON) runs once here, so it is compiled before a migration waits for it.
    /// </summary>
    private static void WarmBookkeeping(string path)
    {
        var scratch = Path.Combine(path, "warm-up.json");
        try
        {
            WorkloadDirectory.WriteAtomically(scratch, new WorkloadStatus { State = WorkloadStates.Incoming, Pid = Environment.ProcessId }, AgentJson.Default.WorkloadStatus);
            WorkloadDirectory.WriteAtomically(scratch, new WorkloadSpec { Id = "warm-up", Name = "warm-up", Mode = "incoming" }, AgentJson.Default.WorkloadSpec);
            _ = JsonSerializer.Deserialize<string[]>("[\"warm-up\"]");
            File.Delete(scratch);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a warm-up.
        }
    }
}
