using BenchmarkDotNet.Running;

// Micro-benchmarks: `dotnet run -c Release --project bench/Ferry.Bench -- --filter '*'`.
// Dirty tracking and post-copy (stopwatch, stateful): `dotnet run -c Release --project bench/Ferry.Bench -- tracking`.
if (args.Length > 0 && args[0] == "tracking")
{
    Ferry.Bench.TrackingBench.Run(args[1..]);
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
