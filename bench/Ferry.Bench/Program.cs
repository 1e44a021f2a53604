using BenchmarkDotNet.Running;

// How to run (from the repository root; Release builds only, figures are ratios against a baseline of the same run):
//   dotnet run -c Release --project bench/Ferry.Bench -- --filter '*'        BenchmarkDotNet micro-benchmarks
//   dotnet run -c Release --project bench/Ferry.Bench -- tracking            dirty tracking and post-copy faults
//   dotnet run -c Release --project bench/Ferry.Bench -- engine [--json]     compile time per MB and kernels vs node,
//                                                                            safe-point overhead (kernels, workloads)
//   dotnet run -c Release --project bench/Ferry.Bench -- checkpoint [--json] 1 GiB snapshot write/fsync/restore vs raw
//                                                                            file I/O, freeze latency per workload
// engine and checkpoint take part names to run only some (engine: compile kernels safepoints tracking; checkpoint: snapshot
// freeze), --reps N, --builds N (compilations per variant in the safe-point and tracking tables), --workloads a,b
// (suite programs to run), and --quick (small sizes: a smoke test, not figures). Tables go to stdout, progress to stderr.
// They need node, clang (kernels.wasm, workloads/build) and wat2wasm; build/programs/*.wasm (programs/build) are
// optional. Results and the commands that produced them: docs/benchmarks.md.
switch (args.Length > 0 ? args[0] : "")
{
    case "tracking":
        Ferry.Bench.TrackingBench.Run(args[1..]);
        return;
    case "engine":
        Ferry.Bench.Engine.EngineBench.Run(args[1..]);
        return;
    case "checkpoint":
        Ferry.Bench.Checkpoint.CheckpointBench.Run(args[1..]);
        return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
