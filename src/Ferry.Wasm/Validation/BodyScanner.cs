using Ferry.Wasm.Binary;

namespace Ferry.Wasm.Validation;

/// <summary>Decodes every function body completely, tracking block nesting, to find binary-format errors.</summary>
internal static class BodyScanner
{
    public static void CheckWellFormed(Module module)
    {
        var memory64 = module.Memories.Length > 0 && module.Memories[0].Is64;
        var ins = default(Instruction);
        for (var i = 0; i < module.Bodies.Length; i++)
        {
            var body = module.Bodies[i];
            var where = $"function {module.ImportedFunctionCount + i}";
            var r = new InstructionReader(body.Code.Span, body.CodeOffset, memory64, where);
            var depth = 1;
            while (depth > 0)
            {
                if (r.AtEnd) throw new MalformedModuleException("unexpected end", r.FileOffset, where);
                r.Read(ref ins);
                switch (ins.Opcode)
                {
                    case 0x02 or 0x03 or 0x04: depth++; break;
                    case 0x0B: depth--; break;
                    case Opcodes.MiscBase + 8 or Opcodes.MiscBase + 9:
                        if (module.DataCount is null && module.Data.Length > 0)
                        {
                            throw new MalformedModuleException("data count section required", ins.Offset, where);
                        }
                        break;
                }
            }
            if (!r.AtEnd) throw new MalformedModuleException("operators remaining after end of function", r.FileOffset, where);
        }
    }
}
