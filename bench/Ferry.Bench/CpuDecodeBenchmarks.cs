using BenchmarkDotNet.Attributes;
using Ferry.CpuFeatures.Bench;
using Ferry.CpuFeatures.Elf;

namespace Ferry.Bench;

/// <summary>
/// CPU-feature scanning throughput on glibc's libc.so.6 (single thread). The baseline is Iced decoding every
/// code byte with nothing else; the others add Ferry's classification, its recursive descent, and the whole
/// per-file analysis. Instructions per invocation are printed in GlobalSetup so M instr/s can be derived.
/// Run: dotnet run -c Release --project bench/Ferry.Bench -- --filter '*Cpu*'
/// </summary>
[MemoryDiagnoser]
public class CpuDecodeBenchmarks
{
    public const string DefaultFile = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    private ElfImage? _image;
    private DecodeKernels? _kernels;

    [GlobalSetup]
    public void Setup()
    {
        var path = Environment.GetEnvironmentVariable("FERRY_BENCH_ELF") ?? DefaultFile;
        _image = ElfImage.Open(path);
        _kernels = new DecodeKernels(ElfFile.Parse(_image));
        Console.WriteLine($"// {path}: {_kernels.CodeBytes} code bytes; instructions per invocation: " +
            $"linear {_kernels.IcedLinear()}, descent {_kernels.Descent()}, analysis {_kernels.Analyze()}");
    }

    [GlobalCleanup]
    public void Cleanup() => _image?.Dispose();

    [Benchmark(Baseline = true)]
    public long IcedDecodeOnly() => _kernels!.IcedLinear();

    [Benchmark]
    public long DecodeAndClassify() => _kernels!.ClassifyLinear(out _);

    [Benchmark]
    public long RecursiveDescent() => _kernels!.Descent();

    [Benchmark]
    public long WholeFileAnalysis() => _kernels!.Analyze();
}
