using System.Text.Json;
using System.Text.Json.Serialization;
using Ferry.Wasm.Runtime;
using Ferry.Wasm.Wasi;

namespace Ferry.Enclave.Runtime;

/// <summary>WASI preview1 as a guest environment: its state travels as versioned JSON of <see cref="WasiState"/>.</summary>
public sealed class WasiEnvironment : IGuestEnvironment
{
    /// <summary>Encoding version of <see cref="CaptureState"/> (a leading byte).</summary>
    public const byte StateVersion = 1;

    private WasiHost? host;

    public WasiEnvironment(WasiContext context) => Context = context;

    public WasiContext Context { get; }

    public static WasiEnvironment Create(WasiOptions options) => new(new WasiContext(options));

    /// <summary>Rebuilds the environment from captured state; <paramref name="stdio"/> supplies stdio and preopen checks.</summary>
    public static WasiEnvironment Restore(ReadOnlySpan<byte> state, WasiOptions stdio) => new(WasiContext.Restore(Decode(state), stdio));

    public void Define(Linker linker) => host = WasiHost.Define(linker, Context);

    public void Bind(Instance instance) => host!.Bind(instance);

    public byte[] CaptureState()
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(Context.Capture(), StateJson.Default.WasiState);
        return [StateVersion, .. json];
    }

    public static WasiState Decode(ReadOnlySpan<byte> state)
    {
        if (state.Length == 0 || state[0] != StateVersion) throw new WasiRestoreException($"unsupported WASI state encoding (version {(state.Length > 0 ? state[0] : -1)})");
        try
        {
            return JsonSerializer.Deserialize(state[1..], StateJson.Default.WasiState) ?? throw new WasiRestoreException("empty WASI state");
        }
        catch (JsonException e)
        {
            throw new WasiRestoreException("corrupt WASI state: " + e.Message);
        }
    }

    public int? ExitCodeOf(Exception e) => e is WasiExitException x ? x.Code : null;

    public void Flush() => Context.FlushOutput();

    public void Dispose() => Context.Dispose();
}

[JsonSerializable(typeof(WasiState))]
[JsonSourceGenerationOptions(UseStringEnumConverter = false)]
internal sealed partial class StateJson : JsonSerializerContext;
