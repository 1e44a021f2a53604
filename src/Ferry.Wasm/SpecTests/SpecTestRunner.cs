using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ferry.Wasm.Binary;
using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.SpecTests;

/// <summary>One failed command of a spec test file.</summary>
public sealed record SpecFailure(string File, int Line, string Command, string Reason);

/// <summary>Outcome of running one .wast/.json spec test file.</summary>
public sealed class SpecFileResult
{
    public required string File { get; init; }
    public int Passed { get; set; }
    public int Failed => Failures.Count;
    /// <summary>Commands that test the text format (assert_malformed/invalid on .wat), which Ferry does not parse.</summary>
    public int Skipped { get; set; }
    public List<SpecFailure> Failures { get; } = [];
}

/// <summary>
/// Runs the official WebAssembly spec tests in wast2json's JSON form against Ferry's engine: decoding, validation,
/// linking, instantiation and execution, with results compared bit for bit (NaN patterns as the spec allows).
/// </summary>
public sealed class SpecTestRunner
{
    private readonly CompileOptions compileOptions;

    public SpecTestRunner(CompileOptions? compileOptions = null) =>
        this.compileOptions = compileOptions ?? CompileOptions.Default with { Collectible = true };

    /// <summary>Converts a .wast with Debian's wast2json into <paramref name="outDir"/> and returns the JSON path.</summary>
    public static string Convert(string wastPath, string outDir, bool memory64)
    {
        Directory.CreateDirectory(outDir);
        var json = Path.Combine(outDir, Path.GetFileNameWithoutExtension(wastPath) + ".json");
        var psi = new ProcessStartInfo("wast2json") { RedirectStandardError = true, RedirectStandardOutput = true };
        if (memory64) psi.ArgumentList.Add("--enable-memory64");
        psi.ArgumentList.Add(wastPath);
        psi.ArgumentList.Add("-o");
        psi.ArgumentList.Add(json);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start wast2json (install the 'wabt' package: ./setup)");
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"wast2json failed on {wastPath}: {err.Trim()}");
        return json;
    }

    /// <summary>Runs one converted file. WebAssembly code runs on a thread with a large stack so deep recursion traps cleanly.</summary>
    public SpecFileResult RunJson(string jsonPath)
    {
        SpecFileResult? result = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = RunJsonOnThisThread(jsonPath);
            }
            catch (Exception e)
            {
                error = e;
            }
        }, 512 * 1024 * 1024);
        thread.Start();
        thread.Join();
        if (error is not null) throw new InvalidOperationException($"spec runner failed on {jsonPath}: {error.Message}", error);
        return result!;
    }

    private SpecFileResult RunJsonOnThisThread(string jsonPath)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(jsonPath))!;
        using var doc = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
        var name = doc.RootElement.TryGetProperty("source_filename", out var sf) ? sf.GetString()! : Path.GetFileName(jsonPath);
        var result = new SpecFileResult { File = name };
        var session = new Session(dir, compileOptions);
        foreach (var cmd in doc.RootElement.GetProperty("commands").EnumerateArray())
        {
            var type = cmd.GetProperty("type").GetString()!;
            var line = cmd.GetProperty("line").GetInt32();
            if (cmd.TryGetProperty("module_type", out var mt) && mt.GetString() == "text")
            {
                result.Skipped++;
                continue;
            }
            string? failure;
            try
            {
                failure = session.Run(type, cmd);
            }
            catch (Exception e)
            {
                failure = $"unexpected {e.GetType().Name}: {e.Message}";
            }
            if (failure is null) result.Passed++;
            else result.Failures.Add(new SpecFailure(name, line, type, failure));
        }
        return result;
    }

    /// <summary>The state of one spec file run: defined modules, registered names, the current module.</summary>
    private sealed class Session
    {
        private readonly string dir;
        private readonly CompileOptions options;
        private readonly Linker linker = new();
        private readonly Dictionary<string, Instance> named = [];
        private Instance? current;

        public Session(string dir, CompileOptions options)
        {
            this.dir = dir;
            this.options = options;
            DefineSpectestModule();
        }

        private void DefineSpectestModule()
        {
            var none = Array.Empty<ValueType>();
            linker.DefineFunction("spectest", "print", new FuncType(none, none), new Action(() => { }));
            linker.DefineFunction("spectest", "print_i32", new FuncType([ValueType.I32], none), new Action<int>(_ => { }));
            linker.DefineFunction("spectest", "print_i64", new FuncType([ValueType.I64], none), new Action<long>(_ => { }));
            linker.DefineFunction("spectest", "print_f32", new FuncType([ValueType.F32], none), new Action<float>(_ => { }));
            linker.DefineFunction("spectest", "print_f64", new FuncType([ValueType.F64], none), new Action<double>(_ => { }));
            linker.DefineFunction("spectest", "print_i32_f32", new FuncType([ValueType.I32, ValueType.F32], none), new Action<int, float>((_, _) => { }));
            linker.DefineFunction("spectest", "print_f64_f64", new FuncType([ValueType.F64, ValueType.F64], none), new Action<double, double>((_, _) => { }));
            linker.Define("spectest", "global_i32", new GlobalCell(new GlobalType(ValueType.I32, false)) { I32 = 666 });
            linker.Define("spectest", "global_i64", new GlobalCell(new GlobalType(ValueType.I64, false)) { I64 = 666 });
            linker.Define("spectest", "global_f32", new GlobalCell(new GlobalType(ValueType.F32, false)) { F32 = 666.6f });
            linker.Define("spectest", "global_f64", new GlobalCell(new GlobalType(ValueType.F64, false)) { F64 = 666.6 });
            linker.Define("spectest", "table", new Table(ValueType.FuncRef, 10, 20));
            linker.Define("spectest", "memory", new LinearMemory(1, 2, false, 2 * MemoryType.PageSize));
        }

        private Module Load(JsonElement cmd)
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, cmd.GetProperty("filename").GetString()!));
            var module = ModuleDecoder.Decode(bytes);
            ModuleValidator.Validate(module);
            return module;
        }

        private Instance Instantiate(Module module) =>
            Instance.Instantiate(ModuleCompiler.Compile(module, options), linker);

        public string? Run(string type, JsonElement cmd)
        {
            switch (type)
            {
                case "module":
                    {
                        current = Instantiate(Load(cmd));
                        if (cmd.TryGetProperty("name", out var n)) named[n.GetString()!] = current;
                        return null;
                    }
                case "register":
                    {
                        var instance = cmd.TryGetProperty("name", out var n) ? named[n.GetString()!] : current!;
                        linker.Register(cmd.GetProperty("as").GetString()!, instance);
                        return null;
                    }
                case "action":
                    Act(cmd.GetProperty("action"));
                    return null;
                case "assert_return":
                    return CheckResults(Act(cmd.GetProperty("action")), cmd.GetProperty("expected"));
                case "assert_trap":
                case "assert_exhaustion":
                    try
                    {
                        Act(cmd.GetProperty("action"));
                        return "expected a trap, got a result";
                    }
                    catch (TrapException e)
                    {
                        return MessageMatches(e.Message, cmd) ? null : $"trap \"{e.Message}\", expected \"{cmd.GetProperty("text").GetString()}\"";
                    }
                case "assert_malformed":
                    return ExpectFailure<MalformedModuleException>(() => Load(cmd), cmd);
                case "assert_invalid":
                    return ExpectFailure<InvalidModuleException>(() => Load(cmd), cmd);
                case "assert_unlinkable":
                    return ExpectFailure<LinkException>(() => Instantiate(Load(cmd)), cmd);
                case "assert_uninstantiable":
                    return ExpectFailure<TrapException>(() => Instantiate(Load(cmd)), cmd);
                default:
                    return $"unknown command type {type}";
            }
        }

        private static bool MessageMatches(string actual, JsonElement cmd)
        {
            var expected = cmd.GetProperty("text").GetString() ?? "";
            return expected.StartsWith(actual, StringComparison.Ordinal) || actual.StartsWith(expected, StringComparison.Ordinal);
        }

        private static string? ExpectFailure<T>(Action action, JsonElement cmd) where T : WasmException
        {
            try
            {
                action();
                return $"expected {typeof(T).Name} (\"{cmd.GetProperty("text").GetString()}\"), but it succeeded";
            }
            catch (T)
            {
                return null;
            }
            catch (WasmException e)
            {
                return $"expected {typeof(T).Name} (\"{cmd.GetProperty("text").GetString()}\"), got {e.GetType().Name}: {e.Message}";
            }
        }

        private WasmValue[] Act(JsonElement action)
        {
            var instance = action.TryGetProperty("module", out var m) ? named[m.GetString()!] : current ?? throw new InvalidOperationException("no module");
            var field = action.GetProperty("field").GetString()!;
            if (action.GetProperty("type").GetString() == "get")
            {
                return instance.Exports[field] is GlobalCell cell ? [cell.Value] : throw new InvalidOperationException($"{field} is not a global");
            }
            var args = action.GetProperty("args").EnumerateArray().Select(ParseValue).ToArray();
            return instance.Invoke(field, args);
        }

        private string? CheckResults(WasmValue[] actual, JsonElement expected)
        {
            var exp = expected.EnumerateArray().ToArray();
            if (exp.Length != actual.Length) return $"expected {exp.Length} results, got {actual.Length}";
            for (var i = 0; i < exp.Length; i++)
            {
                if (!Matches(actual[i], exp[i])) return $"result {i}: got {actual[i]}, expected {exp[i]}";
            }
            return null;
        }
    }

    // ---- values ----

    /// <summary>A host reference as the spec tests write it: ref.extern N.</summary>
    public sealed record ExternRef(uint Value);

    private static ulong ParseBits(string s) => ulong.Parse(s, CultureInfo.InvariantCulture);

    private static WasmValue ParseValue(JsonElement v)
    {
        var type = v.GetProperty("type").GetString();
        var value = v.GetProperty("value");
        switch (type)
        {
            case "i32": return WasmValue.FromI32(unchecked((int)(uint)ParseBits(value.GetString()!)));
            case "i64": return WasmValue.FromI64(unchecked((long)ParseBits(value.GetString()!)));
            case "f32": return WasmValue.FromF32Bits((uint)ParseBits(value.GetString()!));
            case "f64": return WasmValue.FromF64Bits(ParseBits(value.GetString()!));
            case "externref":
                var s = value.GetString()!;
                return WasmValue.FromRef(ValueType.ExternRef, s == "null" ? null : new ExternRef(uint.Parse(s, CultureInfo.InvariantCulture)));
            case "funcref":
                return WasmValue.FromRef(ValueType.FuncRef, null);
            case "v128":
                return V128FromLanes(v.GetProperty("lane_type").GetString()!, value.EnumerateArray().Select(e => e.GetString()!).ToArray());
            default:
                throw new InvalidOperationException($"unknown value type {type}");
        }
    }

    private static WasmValue V128FromLanes(string laneType, string[] lanes)
    {
        Span<byte> bytes = stackalloc byte[16];
        var width = 16 / lanes.Length;
        for (var i = 0; i < lanes.Length; i++)
        {
            var bits = lanes[i].StartsWith("nan", StringComparison.Ordinal) ? 0 : ParseBits(lanes[i]);
            for (var b = 0; b < width; b++) bytes[i * width + b] = (byte)(bits >> (8 * b));
        }
        _ = laneType;
        return WasmValue.FromV128(BitConverter.ToUInt64(bytes[..8]), BitConverter.ToUInt64(bytes[8..]));
    }

    private static bool Matches(WasmValue actual, JsonElement expected)
    {
        var type = expected.GetProperty("type").GetString();
        var value = expected.GetProperty("value");
        switch (type)
        {
            case "i32": return actual.Type == ValueType.I32 && (uint)actual.I32 == (uint)ParseBits(value.GetString()!);
            case "i64": return actual.Type == ValueType.I64 && (ulong)actual.I64 == ParseBits(value.GetString()!);
            case "f32": return actual.Type == ValueType.F32 && FloatMatches(actual.Lo, value.GetString()!, 32);
            case "f64": return actual.Type == ValueType.F64 && FloatMatches(actual.Lo, value.GetString()!, 64);
            case "externref":
                {
                    if (actual.Type != ValueType.ExternRef) return false;
                    var s = value.GetString()!;
                    return s == "null" ? actual.Ref is null : actual.Ref is ExternRef e && e.Value == uint.Parse(s, CultureInfo.InvariantCulture);
                }
            case "funcref":
                {
                    if (actual.Type != ValueType.FuncRef) return false;
                    return value.GetString() == "null" ? actual.Ref is null : actual.Ref is not null;
                }
            case "v128":
                {
                    if (actual.Type != ValueType.V128) return false;
                    var laneType = expected.GetProperty("lane_type").GetString()!;
                    var lanes = value.EnumerateArray().Select(e => e.GetString()!).ToArray();
                    var width = 16 / lanes.Length;
                    for (var i = 0; i < lanes.Length; i++)
                    {
                        var bits = ExtractLane(actual, i, width);
                        if (laneType is "f32" or "f64")
                        {
                            if (!FloatMatches(bits, lanes[i], width * 8)) return false;
                        }
                        else
                        {
                            var mask = width == 8 ? ulong.MaxValue : (1UL << (width * 8)) - 1;
                            if (bits != (ParseBits(lanes[i]) & mask)) return false;
                        }
                    }
                    return true;
                }
            default:
                return false;
        }
    }

    private static ulong ExtractLane(WasmValue v, int lane, int width)
    {
        var bitOffset = lane * width * 8;
        var word = bitOffset < 64 ? v.Lo : v.Hi;
        var shift = bitOffset % 64;
        return width == 8 ? word : (word >> shift) & ((1UL << (width * 8)) - 1);
    }

    private static bool FloatMatches(ulong bits, string expected, int width)
    {
        var expMask = width == 32 ? 0x7F800000UL : 0x7FF0000000000000UL;
        var fracMask = width == 32 ? 0x007FFFFFUL : 0x000FFFFFFFFFFFFFUL;
        var quiet = width == 32 ? 0x00400000UL : 0x0008000000000000UL;
        var isNaN = (bits & expMask) == expMask && (bits & fracMask) != 0;
        return expected switch
        {
            "nan:canonical" => isNaN && (bits & fracMask) == quiet,
            "nan:arithmetic" => isNaN && (bits & quiet) != 0,
            _ => bits == ParseBits(expected),
        };
    }
}
