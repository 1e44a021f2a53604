using Ferry.Wasm.Compilation;
using Ferry.Wasm.Runtime;

namespace Ferry.Wasm.Snapshots;

/// <summary>An instance rebuilt from a snapshot, ready to resume its frames.</summary>
public sealed record RestoredInstance(Instance Instance, FrameRecord[] Frames, byte[] Wasi, IReadOnlyDictionary<string, string> Metadata);

/// <summary>Rebuilds an instance from a snapshot: same module (checked by SHA-256), then its state, then memory.</summary>
public static class SnapshotRestorer
{
    public static unsafe RestoredInstance Restore(SnapshotReader reader, CompiledModule compiled, IImportResolver? imports, InstanceOptions? options = null)
    {
        var h = reader.Header;
        var module = compiled.Module;
        if (!h.ModuleSha256.AsSpan().SequenceEqual(ModuleIdentity.Sha256(module)))
        {
            throw new SnapshotFormatException(
                $"snapshot belongs to module {Convert.ToHexStringLower(h.ModuleSha256)[..16]}…, not {ModuleIdentity.Hex(module)[..16]}… ({h.ModuleName})");
        }
        if ((h.Memory is null) != (module.Memories.Length == 0)) throw new SnapshotFormatException("snapshot memory does not match the module");

        options = (options ?? InstanceOptions.Default) with { RunStart = false, InitializeSegments = false };
        var instance = Instance.Instantiate(compiled, imports, options);
        InstanceStateApplier.Apply(instance, h.Globals, h.Tables, h.DroppedData, h.DroppedElements);

        if (h.Memory is { } image2)
        {
            var memory = instance.Memory!;
            if (image2.Is64 != memory.Is64) throw new SnapshotFormatException("snapshot memory index type differs from the module's");
            if (image2.WasmPages > memory.Pages && memory.Grow(image2.WasmPages - memory.Pages) < 0)
            {
                throw new SnapshotFormatException($"snapshot memory of {image2.WasmPages} pages does not fit this instance's limit of {memory.MaxPages} pages");
            }
            var basePtr = memory.Base;
            var size = memory.Size;
            reader.ReadMemory((page, bytes) =>
            {
                var at = page * SnapshotFormat.PageSize;
                if (at + (ulong)bytes.Length > size) throw new SnapshotFormatException("memory run outside memory");
                bytes.CopyTo(new Span<byte>(basePtr + at, bytes.Length));
            });
        }
        reader.Finish();
        return new RestoredInstance(instance, StateCodec.ResolveFrames(h.Frames, instance), h.Wasi, h.Metadata);
    }
}

/// <summary>Puts saved globals, tables and segment flags into a freshly instantiated (not started) instance.</summary>
public static class InstanceStateApplier
{
    public static void Apply(Instance instance, WasmValue[] globals, StateCodec.TableImage[] tables, bool[] droppedData, bool[] droppedElements)
    {
        var module = instance.Module;
        var state = instance.State;
        if (globals.Length != module.GlobalTypes.Length) throw new SnapshotFormatException("saved globals do not match the module");
        if (tables.Length != module.Tables.Length) throw new SnapshotFormatException("saved tables do not match the module");
        if (droppedData.Length != module.Data.Length || droppedElements.Length != module.Elements.Length)
        {
            throw new SnapshotFormatException("saved segments do not match the module");
        }
        for (var i = 0; i < globals.Length; i++)
        {
            var v = StateCodec.Resolve(globals[i], instance);
            if (v.Type != module.GlobalTypes[i].Type) throw new SnapshotFormatException($"saved global {i} has the wrong type");
            instance.SetGlobal(i, v);
        }
        for (var i = 0; i < tables.Length; i++)
        {
            var image = tables[i];
            var table = state.Tables[i];
            if (image.ElementType != table.ElementType) throw new SnapshotFormatException($"saved table {i} has the wrong type");
            if (image.Elements.Length > table.Size && table.Grow((uint)(image.Elements.Length - table.Size), null) < 0)
            {
                throw new SnapshotFormatException($"saved table {i} is larger than the module allows");
            }
            for (var k = 0; k < image.Elements.Length; k++)
            {
                var fi = image.Elements[k];
                if (fi >= state.Functions.Length) throw new SnapshotFormatException($"saved table {i} names function {fi}, which does not exist");
                table.Elements[k] = fi < 0 ? null : state.Functions[fi];
            }
        }
        // Passive segments survive unless they were dropped; active ones were applied when the program started.
        for (var i = 0; i < droppedData.Length; i++)
        {
            state.DataSegments[i] = droppedData[i] || module.Data[i].Mode == SegmentMode.Active ? null : module.Data[i].Bytes.ToArray();
        }
        for (var i = 0; i < droppedElements.Length; i++)
        {
            if (droppedElements[i]) state.ElementSegments[i] = null;
        }
    }
}
