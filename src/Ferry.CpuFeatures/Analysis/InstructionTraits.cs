using System.Runtime.CompilerServices;
using Iced.Intel;

namespace Ferry.CpuFeatures.Analysis;

/// <summary>
/// Per-<see cref="Code"/> facts used to tell code from data: instructions user-mode code never contains
/// (privileged, port I/O, far transfers). Decoding data as code hits one of these, or an invalid encoding,
/// within a few instructions.
/// </summary>
internal static class InstructionTraits
{
    private static readonly bool[] ImplausibleTable = Build();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsImplausible(Code code) => ImplausibleTable[(int)code];

    private static bool[] Build()
    {
        var codes = Enum.GetValues<Code>();
        var table = new bool[codes.Length];
        foreach (var code in codes)
        {
            var instruction = new Instruction { Code = code };
            // HLT is privileged but user code uses it as a trap after exit(); INT3/UD2 are deliberate traps too.
            bool privileged = instruction.IsPrivileged && code != Code.Hlt;
            bool far = instruction.IsJmpFar || instruction.IsCallFar || instruction.IsJmpFarIndirect || instruction.IsCallFarIndirect
                || instruction.Mnemonic is Mnemonic.Retf or Mnemonic.Iret or Mnemonic.Iretd or Mnemonic.Iretq;
            table[(int)code] = privileged || far;
        }
        return table;
    }
}
