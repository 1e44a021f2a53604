using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Elf;
using Ferry.CpuFeatures.Features;
using Iced.Intel;

namespace Ferry.CpuFeatures.Probe;

/// <summary>The instruction that raised SIGILL: where, what, in which function, and what it needs.</summary>
public sealed record IllegalInstruction(
    ulong Address, string? File, ulong? ElfAddress, string? Disassembly, string? Function, FeatureSet Needs);

/// <summary>How a probed program ended under qemu-user.</summary>
public sealed record ProbeOutcome(
    string CpuSpec, bool Succeeded, int? ExitCode, int? Signal, bool TimedOut, IllegalInstruction? Illegal,
    string StandardOutput, string StandardError, IReadOnlyList<string> TcgDropped);

/// <summary>
/// `cpu probe`: runs a program under qemu-user with its gdbstub on, so that a SIGILL stops the guest before it
/// dies. Ferry then reads RIP, finds the file mapped there in qemu's /proc/PID/maps (qemu-user maps guest
/// memory at the guest's own addresses on x86-64 hosts), converts the file offset to an ELF address through
/// the program headers, decodes the instruction with Iced and names the function from the symbol tables.
/// The signal is then delivered, so the program ends exactly as it would have.
/// </summary>
public sealed class ProgramProbe(QemuUser qemu)
{
    private const int Sigill = 4;

    public ProbeOutcome Run(string cpuSpec, IReadOnlyList<string> command, TimeSpan timeout)
    {
        int port = FreePort();
        var info = new ProcessStartInfo(qemu.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["-g", port.ToString(CultureInfo.InvariantCulture), "-cpu", cpuSpec, .. command])
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {qemu.Path}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow + timeout;
        IllegalInstruction? illegal = null;
        int? exitCode = null, signal = null;
        bool timedOut = false;
        try
        {
            using var gdb = GdbRemote.Connect(port, DateTime.UtcNow + TimeSpan.FromSeconds(10));
            gdb.Send("c");
            while (true)
            {
                var reply = gdb.Receive(deadline);
                if (reply.Length >= 3 && reply[0] is 'W' or 'X')
                {
                    int value = int.Parse(reply.AsSpan(1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (reply[0] == 'W')
                    {
                        exitCode = value;
                    }
                    else
                    {
                        signal = value;
                    }
                    break;
                }
                if (reply.Length >= 3 && reply[0] is 'T' or 'S')
                {
                    int stopSignal = int.Parse(reply.AsSpan(1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (stopSignal == Sigill && illegal is null)
                    {
                        gdb.Send("g");
                        ulong rip = GdbRemote.RipFromRegisters(gdb.Receive(deadline));
                        illegal = Locate(rip, process.Id);
                    }
                    // Deliver the signal (0x05 is gdb's own trap) and let the program go on.
                    gdb.Send(stopSignal == 5 ? "c" : $"C{stopSignal:x2}");
                    continue;
                }
                if (reply.StartsWith('E'))
                {
                    break;
                }
            }
        }
        catch (TimeoutException)
        {
            timedOut = true;
        }
        catch (Exception e) when (e is IOException or SocketException or EndOfStreamException)
        {
            // The guest ended without a final stop packet; the process exit code says how.
        }
        if (!process.WaitForExit(timedOut ? TimeSpan.Zero : TimeSpan.FromSeconds(10)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            timedOut = true;
        }
        process.WaitForExit();
        if (exitCode is null && signal is null && !timedOut)
        {
            if (process.ExitCode > 128)
            {
                signal = process.ExitCode - 128;
            }
            else
            {
                exitCode = process.ExitCode;
            }
        }
        string err = stderr.Result;
        bool succeeded = !timedOut && exitCode == 0;
        return new ProbeOutcome(cpuSpec, succeeded, exitCode, signal, timedOut, illegal, stdout.Result, err, QemuUser.TcgDroppedFeatures(err));
    }

    /// <summary>Finds the file mapped at <paramref name="rip"/> in qemu's address space and decodes the instruction there.</summary>
    public static IllegalInstruction Locate(ulong rip, int qemuPid)
    {
        string maps;
        try
        {
            maps = File.ReadAllText($"/proc/{qemuPid}/maps");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new IllegalInstruction(rip, null, null, null, null, FeatureSet.Empty);
        }
        foreach (var line in maps.Split('\n'))
        {
            var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 6 || !parts[5].StartsWith('/'))
            {
                continue;
            }
            var range = parts[0].Split('-');
            ulong start = ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong end = ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (rip < start || rip >= end)
            {
                continue;
            }
            ulong fileOffset = rip - start + ulong.Parse(parts[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return Describe(rip, parts[5].Trim(), fileOffset);
        }
        return new IllegalInstruction(rip, null, null, null, null, FeatureSet.Empty);
    }

    /// <summary>Decodes the instruction at a file offset of an ELF file and names its function.</summary>
    public static IllegalInstruction Describe(ulong rip, string path, ulong fileOffset)
    {
        try
        {
            using var image = ElfImage.Open(path);
            var elf = ElfFile.Parse(image);
            ulong? address = null;
            foreach (var segment in elf.Segments)
            {
                if (segment.Type == ElfConstants.PtLoad && fileOffset >= segment.Offset && fileOffset < segment.Offset + segment.FileSize)
                {
                    address = segment.Address + (fileOffset - segment.Offset);
                }
            }
            if (address is not ulong va || !image.Contains(fileOffset, 1))
            {
                return new IllegalInstruction(rip, path, null, null, null, FeatureSet.Empty);
            }
            var bytes = image.Span(fileOffset, Math.Min(15UL, (ulong)image.Length - fileOffset), "instruction").ToArray();
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
            decoder.IP = va;
            decoder.Decode(out var instruction);
            var symbols = new SymbolTable(elf.Symbols.Concat(elf.DynamicSymbols)
                .Where(s => s.IsDefined && s.IsFunction && s.Value != 0)
                .Select(s => (s.Value, s.Size, s.Name)));
            var function = symbols.NameFor(va);
            return new IllegalInstruction(rip, path, va, instruction.IsInvalid ? "(invalid encoding)" : instruction.ToString(),
                function, IcedFeatureMap.For(instruction.Code));
        }
        catch (ElfFormatException)
        {
            return new IllegalInstruction(rip, path, null, null, null, FeatureSet.Empty);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
