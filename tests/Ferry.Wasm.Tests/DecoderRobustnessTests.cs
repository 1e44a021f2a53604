using System.Runtime.CompilerServices;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.Tests;

/// <summary>Malformed, truncated and hostile modules get typed errors — never crashes, hangs or huge allocations.</summary>
public class DecoderRobustnessTests
{
    private static readonly string SeedWat = """
        (module
          (type $t (func (param i32) (result i32)))
          (import "env" "f" (func $imp (param i32) (result i32)))
          (memory 1 2)
          (table 4 funcref)
          (global $g (mut i32) (i32.const 7))
          (data (i32.const 16) "hello")
          (elem (i32.const 0) $fac $imp)
          (func $fac (export "fac") (type $t)
            (if (result i32) (i32.lt_s (local.get 0) (i32.const 2))
              (then (i32.const 1))
              (else (i32.mul (local.get 0) (call $fac (i32.sub (local.get 0) (i32.const 1)))))))
          (func (export "loop") (param i32) (result i64) (local i64)
            (block $done
              (loop $l
                (br_if $done (i32.eqz (local.get 0)))
                (local.set 1 (i64.add (local.get 1) (i64.extend_i32_u (i32.load (local.get 0)))))
                (i32.store offset=4 (local.get 0) (global.get $g))
                (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
                (br $l)))
            (local.get 1))
          (func (export "ind") (param i32) (result i32)
            (call_indirect (type $t) (local.get 0) (i32.const 1)))
          (func (export "bulk") (memory.fill (i32.const 0) (i32.const 1) (i32.const 8)) (memory.copy (i32.const 8) (i32.const 0) (i32.const 8)))
        )
        """;

    private static void DecodeValidateCompile(byte[] bytes)
    {
        try
        {
            var module = ModuleDecoder.Decode(bytes);
            ModuleValidator.Validate(module);
            var compiled = ModuleCompiler.Compile(module, CompileOptions.Default with { Collectible = true });
            // Force the JIT over every method: invalid IL would surface here as InvalidProgramException.
            for (var i = module.ImportedFunctionCount; i < module.FunctionCount; i++)
            {
                RuntimeHelpers.PrepareMethod(compiled.InstanceType.GetMethods().First(m => m.Name.EndsWith("@" + i, StringComparison.Ordinal)).MethodHandle);
            }
        }
        catch (MalformedModuleException)
        {
        }
        catch (InvalidModuleException)
        {
        }
    }

    [Fact]
    public void Mutated_modules_give_only_typed_errors()
    {
        var seed = Wat.ToWasm(SeedWat);
        var rng = new Random(12345);
        for (var n = 0; n < 3000; n++)
        {
            var bytes = (byte[])seed.Clone();
            var edits = 1 + rng.Next(4);
            for (var e = 0; e < edits && bytes.Length > 9; e++)
            {
                switch (rng.Next(4))
                {
                    case 0:
                        bytes[rng.Next(8, bytes.Length)] = (byte)rng.Next(256);
                        break;
                    case 1:
                        bytes[rng.Next(8, bytes.Length)] ^= (byte)(1 << rng.Next(8));
                        break;
                    case 2:
                        bytes = bytes[..rng.Next(8, bytes.Length)];
                        break;
                    default:
                        var at = rng.Next(8, bytes.Length);
                        bytes = [.. bytes[..at], (byte)rng.Next(256), .. bytes[at..]];
                        break;
                }
            }
            DecodeValidateCompile(bytes);
        }
    }

    [Fact]
    public void Random_modules_give_only_typed_errors()
    {
        var rng = new Random(999);
        for (var n = 0; n < 3000; n++)
        {
            var body = new byte[rng.Next(0, 200)];
            rng.NextBytes(body);
            // Mostly plausible section ids and sizes, so the decoder gets past the header.
            for (var i = 0; i + 1 < body.Length; i += rng.Next(2, 20)) body[i] = (byte)rng.Next(0, 13);
            DecodeValidateCompile([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, .. body]);
        }
    }

    [Fact]
    public void Truncation_at_every_length_gives_a_typed_error_naming_offset_and_section()
    {
        var seed = Wat.ToWasm(SeedWat);
        var boundaries = SectionBoundaries(seed);
        for (var len = 0; len < seed.Length; len++)
        {
            try
            {
                ModuleValidator.Validate(ModuleDecoder.Decode(seed[..len]));
                // Only a cut exactly between sections can leave a smaller, valid module.
                Assert.Contains(len, boundaries);
            }
            catch (MalformedModuleException e)
            {
                Assert.InRange(e.Offset, 0, len);
                Assert.False(string.IsNullOrEmpty(e.Section));
                Assert.Contains("offset 0x", e.Message);
            }
            catch (InvalidModuleException)
            {
            }
        }
    }

    private static HashSet<int> SectionBoundaries(byte[] module)
    {
        var result = new HashSet<int> { 8 };
        var pos = 8;
        while (pos < module.Length)
        {
            pos++; // id
            uint size = 0;
            for (var shift = 0; ; shift += 7)
            {
                var b = module[pos++];
                size |= (uint)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) break;
            }
            pos += (int)size;
            result.Add(pos);
        }
        return result;
    }

    [Fact]
    public void Huge_claimed_counts_do_not_allocate()
    {
        // A type section that claims 2^32-1 entries in a 10-byte file.
        byte[] bytes = [0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<MalformedModuleException>(() => ModuleDecoder.Decode(bytes));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal("type", e.Section);
        Assert.True(allocated < 1 << 20, $"allocated {allocated} bytes");
    }

    [Fact]
    public void Not_a_module()
    {
        var e = Assert.Throws<MalformedModuleException>(() => ModuleDecoder.Decode("#!/bin/sh\necho hi\n"u8.ToArray()));
        Assert.Equal("magic header not detected", e.Reason);
        Assert.Equal(0, e.Offset);
    }

    [Fact]
    public void Invalid_code_names_function_and_offset()
    {
        var bytes = Wat.ToWasm("(module (func $bad (result i32) (i64.const 1)))", "--no-check");
        var e = Assert.Throws<InvalidModuleException>(() => ModuleValidator.Validate(ModuleDecoder.Decode(bytes)));
        Assert.Equal("type mismatch", e.Reason);
        Assert.Contains("bad", e.Where);
        Assert.True(e.Offset > 8);
    }
}
