using Ferry.Wasm.Binary;
using Ferry.Wasm.Validation;

namespace Ferry.Wasm.Hosting;

/// <summary>Reads, decodes and validates a module file, with errors that name the file.</summary>
public static class ModuleLoader
{
    /// <summary>Largest module file Ferry loads (protects against reading an arbitrary huge file into memory).</summary>
    public const long MaxModuleBytes = 1L << 30;

    public static Module Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"no such module file: {path}", path);
        if (info.Length > MaxModuleBytes) throw new MalformedModuleException($"module file is larger than {MaxModuleBytes >> 20} MiB", 0, "file");
        var bytes = File.ReadAllBytes(path);
        var module = ModuleDecoder.Decode(bytes);
        ModuleValidator.Validate(module);
        return module;
    }
}
