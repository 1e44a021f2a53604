using Ferry.Wasm.FerryAbi;
using Ferry.Wasm.Runtime;

namespace Ferry.Enclave.Runtime;

/// <summary>The <c>ferry</c> host ABI as a guest environment (freestanding and memory64 programs).</summary>
public sealed class FerryAbiEnvironment(FerryAbiContext context) : IGuestEnvironment
{
    private FerryAbiHost? host;

    public FerryAbiContext Context { get; } = context;

    public static FerryAbiEnvironment Create(FerryAbiOptions options) => new(new FerryAbiContext(options));

    public static FerryAbiEnvironment Restore(ReadOnlySpan<byte> state, FerryAbiOptions stdio) =>
        new(FerryAbiContext.Restore(FerryAbiState.Decode(state), stdio));

    public void Define(Linker linker) => host = FerryAbiHost.Define(linker, Context);

    public void Bind(Instance instance) => host!.Bind(instance);

    public byte[] CaptureState() => Context.Capture().Encode();

    public int? ExitCodeOf(Exception e) => e is FerryAbiExitException x ? x.Code : null;

    public void Flush() => Context.FlushOutput();

    public void Dispose() => Context.Dispose();
}
