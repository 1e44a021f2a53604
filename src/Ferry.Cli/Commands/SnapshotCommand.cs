using System.CommandLine;
using System.Text.Json;
using Ferry.Enclave.Runtime;
using Ferry.Wasm.Snapshots;

namespace Ferry.Cli.Commands;

/// <summary>`ferry snapshot inspect FILE`: what a snapshot holds, after checking it completely.</summary>
public static class SnapshotCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("snapshot") { Description = "A snapshot file" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var inspect = new Command("inspect", "Summarise a snapshot (and verify its checksum)") { file, json };
        inspect.SetAction(parse => Inspect(parse.GetValue(file)!, parse.GetValue(json)));
        return new Command("snapshot", "Work with snapshot files") { inspect };
    }

    private static int Inspect(string path, bool asJson)
    {
        if (RestoreCommand.SealedHeader(path) is { } sealedHeader) return InspectSealed(path, sealedHeader, asJson);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var reader = new SnapshotReader(stream);
            var h = reader.Header;
            var stored = reader.ReadMemory(null);
            reader.Finish();
            Ferry.Wasm.Module? module = null;
            if (h.ModuleCode is { } code) module = Ferry.Wasm.Binary.ModuleDecoder.Decode(code);
            string FunctionName(int i) => module?.FunctionName(i) ?? $"$f{i}";
            var abi = Ferry.Wasm.FerryAbi.FerryAbiState.IsEncoded(h.Wasi) ? Ferry.Wasm.FerryAbi.FerryAbiState.Decode(h.Wasi) : null;
            var wasi = h.Wasi.Length > 0 && abi is null ? WasiEnvironment.Decode(h.Wasi) : null;
            var summary = new
            {
                file = path,
                format = SnapshotFormat.Version,
                module = new { name = h.ModuleName, sha256 = Convert.ToHexStringLower(h.ModuleSha256), bytes = h.ModuleSize, embedded = h.ModuleCode is not null },
                memory = h.Memory is null ? null : new
                {
                    index = h.Memory.Is64 ? "i64" : "i32",
                    bytes = h.Memory.WasmPages * 65536,
                    storedPages = stored,
                    zeroPages = (long)(h.Memory.WasmPages * 16) - stored,
                },
                globals = h.Globals.Length,
                tables = h.Tables.Select(t => new { type = t.ElementType.ToString(), size = t.Elements.Length }).ToArray(),
                frames = h.Frames.Select(f => new { function = FunctionName(f.FunctionIndex), index = f.FunctionIndex, safePoint = f.SafePoint, locals = f.Locals.Length, stack = f.Stack.Length }).ToArray(),
                wasi = wasi is null ? null : new
                {
                    args = wasi.Args,
                    preopens = wasi.Preopens.Select(p => $"{p.GuestPath} -> {p.HostPath}").ToArray(),
                    fds = wasi.Fds.Select(f => $"{f.Fd}: {f.Kind} {f.GuestPath} @{f.Position}").ToArray(),
                    monotonicNanos = wasi.MonotonicNanos,
                },
                ferryAbi = abi is null ? null : new { args = abi.Args, monotonicNanos = abi.MonotonicNanos },
                metadata = h.Metadata,
            };
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }
            Console.WriteLine($"snapshot {path} (format {SnapshotFormat.Version}, checksum OK)");
            Console.WriteLine($"  module   {h.ModuleName}  sha256 {Convert.ToHexStringLower(h.ModuleSha256)[..16]}…  {h.ModuleSize} bytes{(h.ModuleCode is null ? "" : " (embedded)")}");
            if (summary.memory is { } m) Console.WriteLine($"  memory   {m.bytes >> 20} MiB ({m.index}), {m.storedPages} pages stored, {m.zeroPages} zero pages omitted");
            Console.WriteLine($"  state    {h.Globals.Length} globals, {h.Tables.Length} tables, {h.Frames.Length} frames");
            foreach (var f in summary.frames) Console.WriteLine($"    {f.function} (#{f.index}) at safe point {f.safePoint}: {f.locals} live locals, {f.stack} stack values");
            if (wasi is not null)
            {
                Console.WriteLine($"  wasi     args: {string.Join(' ', wasi.Args)}");
                foreach (var fd in summary.wasi!.fds) Console.WriteLine($"    fd {fd}");
            }
            if (abi is not null) Console.WriteLine($"  ferry-abi args: {string.Join(' ', abi.Args)}");
            foreach (var (k, v) in h.Metadata) Console.WriteLine($"  {k,-8} {v}");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is Ferry.Wasm.WasmException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ferry snapshot inspect: {path}: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>
    /// A sealed checkpoint shows only its clear-text header: whose state it is, its epoch and how its key is wrapped. The
    /// header is not authenticated without the key (only the runtime of the host that sealed it can check it), and the
    /// content stays sealed.
    /// </summary>
    private static int InspectSealed(string path, Ferry.Enclave.Confidential.CheckpointHeader h, bool asJson)
    {
        var length = new FileInfo(path).Length;
        var wrap = h.WrapKind switch
        {
            Ferry.Enclave.Confidential.CheckpointWrapKind.Platform => "platform (only the host that wrote it can open it)",
            Ferry.Enclave.Confidential.CheckpointWrapKind.AgreedKey => "agreed key (opens only with the key agreed with the target runtime)",
            _ => h.WrapKind.ToString(),
        };
        if (asJson)
        {
            var summary = new
            {
                file = path,
                @sealed = true,
                measurement = Convert.ToHexStringLower(h.Identity.Measurement),
                instanceId = h.Identity.InstanceId.ToString(),
                epoch = h.Epoch,
                wrapKind = h.WrapKind.ToString().ToLowerInvariant(),
                chunkSize = h.ChunkSize,
                fileId = h.FileId.ToString(),
                bytes = length,
                content = "sealed",
            };
            Console.WriteLine(JsonSerializer.Serialize(summary, new JsonSerializerOptions { WriteIndented = true }));
            return ExitCodes.Ok;
        }
        Console.WriteLine($"sealed checkpoint {path} ({length} bytes, format {Ferry.Enclave.Confidential.SealedCheckpoint.Version})");
        Console.WriteLine($"  measurement  {Convert.ToHexStringLower(h.Identity.Measurement)}");
        Console.WriteLine($"  instance id  {h.Identity.InstanceId}");
        Console.WriteLine($"  epoch        {h.Epoch}");
        Console.WriteLine($"  key wrap     {wrap}");
        Console.WriteLine($"  chunks       {h.ChunkSize >> 10} KiB each");
        Console.WriteLine("  content      sealed (AES-256-GCM): memory, frames and environment are not shown; the header is authenticated only when the");
        Console.WriteLine("               runtime of the host that wrote it opens the checkpoint (`ferry restore --on URL FILE`)");
        return ExitCodes.Ok;
    }
}
