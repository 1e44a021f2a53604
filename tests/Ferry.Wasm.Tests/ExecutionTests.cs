using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.Tests;

public class ExecutionTests
{
    internal static Instance Instantiate(string wat, IImportResolver? imports = null, CompileOptions? options = null, params string[] flags)
    {
        var module = ModuleDecoder.Decode(Wat.ToWasm(wat, flags));
        ModuleValidator.Validate(module);
        return Instance.Instantiate(ModuleCompiler.Compile(module, options), imports);
    }

    [Fact]
    public void Runaway_recursion_traps_on_a_small_stack_thread_and_the_process_survives()
    {
        var instance = Instantiate("(module (func $r (export \"r\") (param i32) (result i32) (i32.add (i32.const 1) (call $r (local.get 0)))))");
        TrapException? trap = null;
        // 256 KiB of stack: the engine must notice the real stack running out before .NET does.
        var t = new Thread(() => trap = Assert.Throws<TrapException>(() => instance.Invoke("r", WasmValue.FromI32(0))), 256 * 1024);
        t.Start();
        t.Join();
        Assert.NotNull(trap);
        Assert.Equal(TrapKind.CallStackExhausted, trap!.Kind);
        Assert.Equal("call stack exhausted", trap.Message);
    }

    [Fact]
    public void Backtrace_names_functions_and_folds_recursion()
    {
        var instance = Instantiate("""
            (module
              (func $leaf (unreachable))
              (func $mid (param i32) (if (local.get 0) (then (call $mid (i32.sub (local.get 0) (i32.const 1)))) (else (call $leaf))))
              (func (export "top") (call $mid (i32.const 100))))
            """);
        var trap = Assert.Throws<TrapException>(() => instance.Invoke("top"));
        var bt = instance.Backtrace(trap);
        Assert.Equal("unreachable", trap.Message);
        Assert.StartsWith("0: leaf", bt[0]);
        Assert.Contains("mid (x101)", bt[1]);
        Assert.Contains("top", bt[2]);
    }

    [Fact]
    public void Memory_grows_without_moving_and_respects_the_host_limit()
    {
        var module = ModuleDecoder.Decode(Wat.ToWasm("""
            (module (memory (export "m") 1)
              (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
              (func (export "poke") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
              (func (export "peek") (param i32) (result i32) (i32.load (local.get 0))))
            """));
        var instance = Instance.Instantiate(ModuleCompiler.Compile(module), null, new InstanceOptions { MaxMemoryBytes = 4 * 65536 });
        unsafe
        {
            var basePtr = (nint)instance.Memory!.Base;
            Assert.Equal(1, instance.Invoke("grow", WasmValue.FromI32(2))[0].I32);
            Assert.Equal(basePtr, (nint)instance.Memory.Base);
        }
        instance.Invoke("poke", WasmValue.FromI32(3 * 65536 - 4), WasmValue.FromI32(42));
        Assert.Equal(42, instance.Invoke("peek", WasmValue.FromI32(3 * 65536 - 4))[0].I32);
        Assert.Equal(-1, instance.Invoke("grow", WasmValue.FromI32(2))[0].I32);
        var trap = Assert.Throws<TrapException>(() => instance.Invoke("peek", WasmValue.FromI32(3 * 65536 - 3)));
        Assert.Equal("out of bounds memory access", trap.Message);
    }

    [Fact]
    public void Memory64_beyond_4GiB_addresses_are_bounds_checked()
    {
        var instance = Instantiate("""
            (module (memory i64 1)
              (func (export "load") (param i64) (result i32) (i32.load offset=0xFFFFFFFF (local.get 0))))
            """, flags: "--enable-memory64");
        var trap = Assert.Throws<TrapException>(() => instance.Invoke("load", WasmValue.FromI64(1)));
        Assert.Equal(TrapKind.OutOfBoundsMemory, trap.Kind);
        trap = Assert.Throws<TrapException>(() => instance.Invoke("load", WasmValue.FromI64(-1)));
        Assert.Equal(TrapKind.OutOfBoundsMemory, trap.Kind);
    }
}
