using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Snapshots;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.Tests;

public class SnapshotTests
{
    // Fills memory with a pattern as it loops, keeps state in globals and a table, and checksums at the end.
    private const string Program = """
        (module
          (import "env" "tick" (func $tick (param i32)))
          (memory 2 100)
          (global $g (mut i64) (i64.const 0))
          (table 4 funcref)
          (elem (i32.const 1) $mix)
          (data $passive "passive data")
          (func $mix (param i64 i32) (result i64)
            (i64.xor (i64.rotl (local.get 0) (i64.const 5)) (i64.extend_i32_u (local.get 1))))
          (func (export "run") (param $n i32) (result i64) (local $i i32) (local $h i64)
            (drop (memory.grow (i32.const 3)))
            (loop $l
              (call $tick (local.get $i))
              (i32.store (i32.mul (local.get $i) (i32.const 4096)) (i32.mul (local.get $i) (i32.const 2654435761)))
              (global.set $g (call_indirect (param i64 i32) (result i64) (global.get $g) (local.get $i) (i32.const 1)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
            (memory.init $passive (i32.const 100) (i32.const 0) (i32.const 7))
            (local.set $i (i32.const 0))
            (loop $sum
              (local.set $h (call $mix (local.get $h) (i32.load (local.get $i))))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))
              (br_if $sum (i32.lt_u (local.get $i) (i32.const 327680))))
            (i64.add (local.get $h) (global.get $g)))
        )
        """;

    private sealed class Ticker
    {
        public Instance? Instance;
        public int FreezeAt = -1;
        public int Count;
        public void Tick(int _)
        {
            if (Count++ == FreezeAt) Instance!.State.RequestFreeze();
        }
    }

    private static CompiledModule Compile() =>
        ModuleCompiler.Compile(Load(), CompileOptions.Default with { Collectible = true });

    private static Module Load()
    {
        var m = ModuleDecoder.Decode(Wat.ToWasm(Program));
        ModuleValidator.Validate(m);
        return m;
    }

    private static (Instance, Ticker, Linker) Create(CompiledModule compiled, bool instantiate = true)
    {
        var ticker = new Ticker();
        var linker = new Linker().DefineFunction("env", "tick", new FuncType([ValueType.I32], []), new Action<int>(ticker.Tick));
        var instance = instantiate ? Instance.Instantiate(compiled, linker) : null!;
        ticker.Instance = instance;
        return (instance, ticker, linker);
    }

    private static byte[] FreezeAndSnapshot(CompiledModule compiled, int freezeAt)
    {
        var (instance, ticker, _) = Create(compiled);
        ticker.FreezeAt = freezeAt;
        var outcome = Execution.Call(instance, instance.GetFunction("run"), WasmValue.FromI32(60));
        Assert.True(outcome.IsFrozen);
        using var ms = new MemoryStream();
        SnapshotWriter.Write(ms, instance, outcome.Frames!, "wasi-state"u8, new Dictionary<string, string>(), "test.wasm");
        return ms.ToArray();
    }

    private static long Expected(CompiledModule compiled)
    {
        var (instance, _, _) = Create(compiled);
        return Execution.Call(instance, instance.GetFunction("run"), WasmValue.FromI32(60)).Results![0].I64;
    }

    private static long RestoreAndFinish(CompiledModule compiled, byte[] snapshot)
    {
        var (_, ticker, linker) = Create(compiled, instantiate: false);
        var restored = SnapshotRestorer.Restore(new SnapshotReader(new MemoryStream(snapshot)), compiled, linker);
        ticker.Instance = restored.Instance;
        Assert.Equal("wasi-state"u8.ToArray(), restored.Wasi);
        var outcome = Execution.Resume(restored.Instance, restored.Frames);
        Assert.False(outcome.IsFrozen);
        return outcome.Results![0].I64;
    }

    [Fact]
    public void Snapshot_restored_in_a_fresh_instance_finishes_with_the_uninterrupted_result()
    {
        var compiled = Compile();
        var expected = Expected(compiled);
        foreach (var at in new[] { 0, 1, 17, 42, 59 })
        {
            Assert.Equal(expected, RestoreAndFinish(compiled, FreezeAndSnapshot(compiled, at)));
        }
    }

    [Fact]
    public void Snapshots_contain_nothing_host_specific()
    {
        // Two instances (different memory addresses, separately compiled code) frozen at the same point must
        // give byte-identical snapshots: no pointers, addresses or JIT state leak into the format.
        var a = FreezeAndSnapshot(Compile(), 30);
        var b = FreezeAndSnapshot(Compile(), 30);
        Assert.Equal(a, b);
        Assert.Equal("FERRYSNP"u8.ToArray(), a[..8]);
    }

    [Fact]
    public void Zero_pages_are_omitted()
    {
        var snapshot = FreezeAndSnapshot(Compile(), 5);
        // 5 Wasm pages = 80 KiB of 4 KiB pages, of which only the ones written so far are non-zero.
        Assert.True(snapshot.Length < 12 * 4096, $"snapshot is {snapshot.Length} bytes");
    }

    [Fact]
    public void Corrupt_or_truncated_snapshots_are_refused()
    {
        var compiled = Compile();
        var snapshot = FreezeAndSnapshot(compiled, 20);
        var rng = new Random(3);
        for (var n = 0; n < 200; n++)
        {
            var bad = (byte[])snapshot.Clone();
            bad[rng.Next(bad.Length)] ^= (byte)(1 << rng.Next(8));
            Assert.ThrowsAny<WasmException>(() => RestoreAndFinish(compiled, bad));
        }
        for (var len = 0; len < snapshot.Length; len += 1 + len / 8)
        {
            Assert.ThrowsAny<WasmException>(() => RestoreAndFinish(compiled, snapshot[..len]));
        }
    }

    [Fact]
    public void Snapshot_of_another_module_is_refused()
    {
        var snapshot = FreezeAndSnapshot(Compile(), 3);
        var other = ModuleDecoder.Decode(Wat.ToWasm("(module (import \"env\" \"tick\" (func (param i32))) (memory 1))"));
        var compiled = ModuleCompiler.Compile(other);
        var (_, _, linker) = Create(compiled, instantiate: false);
        var e = Assert.Throws<SnapshotFormatException>(() => SnapshotRestorer.Restore(new SnapshotReader(new MemoryStream(snapshot)), compiled, linker));
        Assert.Contains("belongs to module", e.Message);
    }

    [Fact]
    public void Record_kinds_are_stable()
    {
        // Persisted values: append only. Changing one breaks every snapshot and migration peer in the field.
        Assert.Equal(1, (int)RecordKind.Module);
        Assert.Equal(2, (int)RecordKind.Metadata);
        Assert.Equal(3, (int)RecordKind.Globals);
        Assert.Equal(4, (int)RecordKind.Tables);
        Assert.Equal(5, (int)RecordKind.Segments);
        Assert.Equal(6, (int)RecordKind.Frames);
        Assert.Equal(7, (int)RecordKind.Wasi);
        Assert.Equal(8, (int)RecordKind.Memory);
        Assert.Equal(0xFFFF, (int)RecordKind.End);
        Assert.Equal(9, (int)RecordKind.ModuleCode);
        Assert.Equal(10, Enum.GetValues<RecordKind>().Length);
    }

    [Fact]
    public void XxHash64_matches_the_reference_value_for_empty_input()
    {
        Assert.Equal(0xEF46DB3751D8E999UL, XxHash64.Hash([]));
        var x = new XxHash64();
        var data = Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray();
        foreach (var chunk in data.Chunk(7)) x.Append(chunk);
        Assert.Equal(XxHash64.Hash(data), x.Digest());
    }
}
