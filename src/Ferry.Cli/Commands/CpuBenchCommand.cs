using System.CommandLine;
using System.Diagnostics;
using Ferry.CpuFeatures.Bench;
using Ferry.CpuFeatures.Closure;
using Ferry.CpuFeatures.Elf;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry cpu bench`: decode throughput on one file, as a ratio to Iced decoding alone in the same run, and
/// optionally the wall time of a whole scan. Whole-process figures for docs/benchmarks.md; the
/// BenchmarkDotNet versions of the kernels live in bench/Ferry.Bench (CpuDecodeBenchmarks).
/// </summary>
public static class CpuBenchCommand
{
    public static Command Create()
    {
        var file = new Option<string>("--file") { Description = "ELF file whose code is decoded", DefaultValueFactory = _ => "/usr/lib/x86_64-linux-gnu/libc.so.6" };
        var iterations = new Option<int>("--iterations") { Description = "Timed repetitions per kernel (best is reported)", DefaultValueFactory = _ => 5 };
        var scan = new Option<string[]>("--scan") { Description = "Also time a full `cpu scan` of these paths (e.g. /usr/bin /usr/lib)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("bench", "Measure decode throughput (vs Iced alone, same run) and optionally a whole scan")
        {
            file, iterations, scan,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            int n = Math.Max(1, parse.GetValue(iterations));
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores, load average {LoadAverage()}");
            try
            {
                using var image = ElfImage.Open(path);
                var kernels = new DecodeKernels(ElfFile.Parse(image));
                Console.WriteLine($"{path}: {kernels.CodeBytes:N0} code bytes; single thread, best of {n} by process CPU time after one warm-up");
                var baseline = Measure("Iced decode only (baseline)", kernels.IcedLinear, n, kernels.CodeBytes, null);
                Measure("decode + feature classification", () => kernels.ClassifyLinear(out _), n, kernels.CodeBytes, baseline);
                Measure("recursive descent (cpu scan's decoder)", kernels.Descent, n, null, baseline);
                Measure("whole per-file analysis", kernels.Analyze, n, null, baseline);
            }
            catch (ElfFormatException e)
            {
                Console.Error.WriteLine($"cpu bench: {path}: {e.Message}");
                return ExitCodes.Usage;
            }
            var paths = parse.GetValue(scan) ?? [];
            if (paths.Length > 0)
            {
                using var process = Process.GetCurrentProcess();
                var cpuBefore = process.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                var report = new ScanSession(new ScanOptions()).Run(paths);
                clock.Stop();
                process.Refresh();
                double cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds;
                Console.WriteLine($"scan of {string.Join(' ', paths)}: {clock.Elapsed.TotalSeconds:F1} s wall, {cpu:F1} s CPU " +
                    $"(= {cpu / Environment.ProcessorCount:F1} s on {Environment.ProcessorCount} idle cores), " +
                    $"{report.Files.Count(f => f.Analysis is not null)} ELF files analysed ({report.Files.Count(f => f.Error is not null)} refused), " +
                    $"{report.CodeBytes / 1e6:F0} MB of code, {report.Instructions / 1e6:F0} M instructions, " +
                    $"{report.Instructions / clock.Elapsed.TotalSeconds / 1e6:F1} M instr/s on {Environment.ProcessorCount} cores; load average now {LoadAverage()}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// Best of N samples, timed by this process's CPU time rather than the wall clock (on a shared machine other
    /// processes stretch wall time, not the CPU time the kernel used). A sample repeats the kernel until it has
    /// used at least 250 ms, because Linux accounts CPU time in 10 ms ticks.
    /// </summary>
    private static double Measure(string name, Func<long> kernel, int iterations, long? bytes, double? baseline)
    {
        long instructions = kernel(); // warm-up (JIT tiers, page cache)
        double best = double.MaxValue;
        using var process = Process.GetCurrentProcess();
        for (int i = 0; i < iterations; i++)
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            int repeats = 0;
            double used;
            do
            {
                instructions = kernel();
                repeats++;
                process.Refresh();
                used = (process.TotalProcessorTime - before).TotalSeconds;
            }
            while (used < 0.25);
            best = Math.Min(best, used / repeats);
        }
        double rate = instructions / best / 1e6;
        string mbs = bytes is long b ? $", {b / best / 1e6,6:F0} MB/s" : "";
        string ratio = baseline is double r ? $", {rate / r:F2}x Iced" : "";
        Console.WriteLine($"  {name,-40} {instructions,12:N0} instr in {best * 1000,8:F1} ms = {rate,6:F1} M instr/s{mbs}{ratio}");
        return rate;
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
