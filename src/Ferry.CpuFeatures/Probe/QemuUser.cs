using System.Diagnostics;
using System.Text;
using Ferry.CpuFeatures.Models;

namespace Ferry.CpuFeatures.Probe;

/// <summary>How one run under qemu-user ended.</summary>
public sealed record QemuRun(int ExitCode, bool TimedOut, string StandardOutput, string StandardError, IReadOnlyList<string> TcgDropped)
{
    /// <summary>Killed by SIGILL: 128 + 4, as a shell reports it.</summary>
    public bool IllegalInstruction => ExitCode == 132;
}

/// <summary>
/// Runs programs under Debian's qemu-user (`qemu-x86_64 -cpu SPEC`), which emulates the CPU model's feature set
/// with TCG: instructions of features the model lacks raise SIGILL. TCG has no AVX-512 at all.
/// </summary>
public sealed class QemuUser
{
    public const string DefaultPath = "/usr/bin/qemu-x86_64";
    private readonly Lazy<(HashSet<string> Models, HashSet<string> Flags)> _help;

    public QemuUser(string path = DefaultPath)
    {
        Path = path;
        _help = new Lazy<(HashSet<string>, HashSet<string>)>(ReadHelp);
    }

    public string Path { get; }

    public bool IsInstalled => File.Exists(Path);

    /// <summary>The QEMU version line (`qemu-x86_64 --version`), for reports.</summary>
    public string Version()
    {
        var run = Run(["--version"], TimeSpan.FromSeconds(10));
        return run.StandardOutput.Split('\n')[0].Trim();
    }

    /// <summary>Model names this qemu-user knows (its `-cpu help`).</summary>
    public IReadOnlySet<string> KnownModels => _help.Value.Models;

    /// <summary>CPUID flag names this qemu-user accepts in +feat/-feat.</summary>
    public IReadOnlySet<string> KnownFlags => _help.Value.Flags;

    /// <summary>
    /// A -cpu argument for a catalog model: its name when this qemu-user knows it, else `base` plus the
    /// model's features this qemu-user can name (newer models than the installed QEMU, e.g. SapphireRapids
    /// on QEMU 7.2), with the vendor/family/model so CPUID looks alike.
    /// </summary>
    public string CpuSpec(CpuModelCatalog catalog, QemuCpuModel model, IEnumerable<string> remove, out IReadOnlyList<string> unnamed)
    {
        var removed = remove.ToHashSet(StringComparer.Ordinal);
        var missing = new List<string>();
        var sb = new StringBuilder();
        var names = new[] { model.Name, model.Alias, model.Version == 1 ? model.Base : null };
        var known = names.FirstOrDefault(n => n is not null && KnownModels.Contains(n));
        if (known is not null)
        {
            sb.Append(known);
            foreach (var f in removed.Order(StringComparer.Ordinal))
            {
                var q = catalog.QemuName(f);
                if (KnownFlags.Contains(q))
                {
                    sb.Append(",-").Append(q);
                }
            }
        }
        else
        {
            sb.Append("base");
            if (model.Vendor is not null)
            {
                sb.Append(",vendor=").Append(model.Vendor);
            }
            if (model.Family is int family)
            {
                sb.Append(",family=").Append(family);
            }
            if (model.ModelNumber is int number)
            {
                sb.Append(",model=").Append(number);
            }
            foreach (var f in model.Features.Where(f => !removed.Contains(f)).Order(StringComparer.Ordinal))
            {
                var q = catalog.QemuName(f);
                if (KnownFlags.Contains(q))
                {
                    sb.Append(",+").Append(q);
                }
                else
                {
                    missing.Add(f);
                }
            }
        }
        unnamed = missing;
        return sb.ToString();
    }

    /// <summary>Runs qemu-x86_64 with arguments; kills it (and reports a timeout) after <paramref name="timeout"/>.</summary>
    public QemuRun Run(IReadOnlyList<string> arguments, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {Path}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        bool exited = process.WaitForExit(timeout);
        if (!exited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        process.WaitForExit();
        string err = stderr.Result;
        return new QemuRun(exited ? process.ExitCode : -1, !exited, stdout.Result, err, TcgDroppedFeatures(err));
    }

    /// <summary>"qemu-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:EBX.hle [bit 4]" → hle.</summary>
    public static IReadOnlyList<string> TcgDroppedFeatures(string stderr)
    {
        var dropped = new List<string>();
        foreach (var line in stderr.Split('\n'))
        {
            const string marker = "TCG doesn't support requested feature: ";
            int at = line.IndexOf(marker, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }
            // "CPUID.07H:EBX.hle [bit 4]": the name follows the register's dot and ends at the space.
            var rest = line[(at + marker.Length)..];
            int colon = rest.IndexOf(':');
            int dot = colon >= 0 ? rest.IndexOf('.', colon) : -1;
            var name = (dot >= 0 ? rest[(dot + 1)..] : rest).Split(' ')[0];
            if (name.Length > 0 && !dropped.Contains(name))
            {
                dropped.Add(name);
            }
        }
        return dropped;
    }

    private (HashSet<string>, HashSet<string>) ReadHelp()
    {
        var models = new HashSet<string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        if (!IsInstalled)
        {
            return (models, flags);
        }
        var run = Run(["-cpu", "help"], TimeSpan.FromSeconds(20));
        bool inFlags = false;
        foreach (var line in run.StandardOutput.Split('\n'))
        {
            if (line.StartsWith("x86 ", StringComparison.Ordinal))
            {
                models.Add(line[4..].Trim().Split(' ')[0]);
            }
            else if (line.StartsWith("Recognized CPUID flags", StringComparison.Ordinal))
            {
                inFlags = true;
            }
            else if (inFlags)
            {
                foreach (var flag in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    flags.Add(flag);
                }
            }
        }
        return (models, flags);
    }
}
