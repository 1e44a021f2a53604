using Ferry.Wasm.FerryAbi;

namespace Ferry.Wasm.Tests;

public sealed class FerryAbiStateTests
{
    [Fact]
    public void State_round_trips()
    {
        var state = new FerryAbiState(["microbench64.wasm", "--mem", "5G", "ünïcode"], 123_456_789_012);
        var decoded = FerryAbiState.Decode(state.Encode());
        Assert.Equal(state.Args, decoded.Args);
        Assert.Equal(state.MonotonicNanos, decoded.MonotonicNanos);
    }

    [Fact]
    public void Every_truncation_and_bad_count_is_refused_with_a_typed_error()
    {
        var bytes = new FerryAbiState(["a", "bc"], 7).Encode();
        for (var n = 0; n < bytes.Length; n++)
        {
            Assert.ThrowsAny<WasmException>(() => FerryAbiState.Decode(bytes.AsSpan(0, n)));
        }
        var badCount = (byte[])bytes.Clone();
        badCount[13] = 0xFF; // argument count → huge
        Assert.Throws<FerryAbiException>(() => FerryAbiState.Decode(badCount));
        Assert.Throws<FerryAbiException>(() => FerryAbiState.Decode([.. bytes, 0]));
        var badVersion = (byte[])bytes.Clone();
        badVersion[4] = 9;
        Assert.Contains("version 9", Assert.Throws<FerryAbiException>(() => FerryAbiState.Decode(badVersion)).Message);
    }

    [Fact]
    public void Wasi_state_is_not_mistaken_for_ferry_abi_state() =>
        Assert.False(FerryAbiState.IsEncoded([1, (byte)'{', (byte)'}']));
}
