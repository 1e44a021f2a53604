using System.Buffers.Binary;
using Ferry.CpuFeatures.Analysis;
using Ferry.CpuFeatures.Closure;
using Ferry.CpuFeatures.Elf;

namespace Ferry.CpuFeatures.Tests;

/// <summary>Bad input gets a typed per-file error; nothing crashes, hangs or allocates what a header claims.</summary>
[Collection(CompiledProgramsCollection.Name)]
public sealed class ElfRobustnessTests(TestPrograms programs)
{
    private static FileAnalysis AnalyzeBytes(byte[] bytes)
    {
        using var image = ElfImage.FromBytes(bytes);
        return BinaryAnalyzer.Analyze("bytes", ElfFile.Parse(image));
    }

    private static ElfFormatException Refused(byte[] bytes) => Assert.Throws<ElfFormatException>(() => AnalyzeBytes(bytes));

    [Fact]
    public void A_truncated_file_gets_a_clear_error()
    {
        var bytes = File.ReadAllBytes(programs.Path("avx2_main"))[..3000];
        var path = programs.Path("truncated");
        File.WriteAllBytes(path, bytes);
        var scanned = ScanSession.AnalyzeOne(path, FileRole.Input, null, keepGraph: false);
        Assert.NotNull(scanned.Error);
        Assert.Equal(ElfErrorKind.Truncated, scanned.Error!.Kind);
        Assert.Contains("past the end of the file", scanned.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_scan_reports_bad_files_and_goes_on()
    {
        var notElf = programs.Path("notes.txt");
        File.WriteAllText(notElf, "#!/bin/sh\necho not a program\n");
        var truncated = programs.Path("truncated2");
        File.WriteAllBytes(truncated, File.ReadAllBytes(programs.Path("avx2_main"))[..200]);
        var report = new ScanSession(new ScanOptions { FollowNeeded = false })
            .Run([notElf, truncated, programs.Path("avx2_main"), programs.Path("no-such-file")]);
        Assert.Equal(4, report.Inputs);
        Assert.Equal(3, report.InputErrors);
        Assert.Equal(ElfErrorKind.NotElf, report.Files.Single(f => f.Path == notElf).Error!.Kind);
        Assert.Equal(ElfErrorKind.Truncated, report.Files.Single(f => f.Path == truncated).Error!.Kind);
        Assert.Equal(ElfErrorKind.Io, report.Files.Single(f => f.Path.EndsWith("no-such-file", StringComparison.Ordinal)).Error!.Kind);
        Assert.True(report.Closure.Required.Contains(Features.CpuFeature.Avx2));
    }

    [Fact]
    public void Empty_and_non_elf_inputs_are_refused_as_not_elf()
    {
        Assert.Equal(ElfErrorKind.NotElf, Refused([]).Kind);
        Assert.Equal(ElfErrorKind.NotElf, Refused("hello world, this is text"u8.ToArray()).Kind);
        Assert.Equal(ElfErrorKind.Truncated, Refused([0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1]).Kind);
    }

    [Fact]
    public void Other_elf_flavours_are_unsupported_not_misread()
    {
        var header = ValidHeader();
        header[4] = 1; // ELFCLASS32
        Assert.Equal(ElfErrorKind.Unsupported, Refused(header).Kind);
        header = ValidHeader();
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(18), 183); // aarch64
        Assert.Contains("not x86-64", Refused(header).Message, StringComparison.Ordinal);
        header = ValidHeader();
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), 1); // ET_REL
        Assert.Contains("relocatable", Refused(header).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_header_claiming_a_huge_section_table_is_bounded_by_the_file()
    {
        var header = ValidHeader();
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(40), 64); // e_shoff
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(58), 64); // e_shentsize
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(60), 65535); // e_shnum
        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Refused(header);
        Assert.Equal(ElfErrorKind.Truncated, error.Kind);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "no allocation sized by the header");
    }

    [Fact]
    public void A_code_section_claiming_exabytes_is_refused()
    {
        var bytes = File.ReadAllBytes(programs.Path("avx512_gated"));
        using (var image = ElfImage.FromBytes(bytes))
        {
            var text = ElfFile.Parse(image).Sections.Single(s => s.Name == ".text");
            ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40));
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)shoff + text.Index * 64 + 32), 1UL << 60);
        }
        var error = Refused(bytes);
        Assert.Equal(ElfErrorKind.Truncated, error.Kind);
        Assert.Contains(".text", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Randomly_damaged_binaries_never_crash_the_analysis()
    {
        var original = File.ReadAllBytes(programs.Path("avx512_gated"));
        var random = new Random(20261122);
        int analysed = 0, refused = 0;
        for (int round = 0; round < 300; round++)
        {
            var bytes = (byte[])original.Clone();
            int edits = 1 + random.Next(8);
            for (int e = 0; e < edits; e++)
            {
                // Half the damage lands in headers and tables, where it hurts a parser most.
                int at = random.Next(2) == 0 ? random.Next(Math.Min(bytes.Length, 0x400)) : random.Next(bytes.Length);
                bytes[at] = (byte)random.Next(256);
            }
            if (random.Next(4) == 0)
            {
                bytes = bytes[..random.Next(bytes.Length)];
            }
            try
            {
                AnalyzeBytes(bytes);
                analysed++;
            }
            catch (ElfFormatException)
            {
                refused++;
            }
        }
        Assert.Equal(300, analysed + refused);
    }

    /// <summary>A 64-byte ELF64 x86-64 ET_EXEC header with no tables.</summary>
    private static byte[] ValidHeader()
    {
        var h = new byte[64];
        h[0] = 0x7f;
        h[1] = (byte)'E';
        h[2] = (byte)'L';
        h[3] = (byte)'F';
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(16), ElfConstants.EtExec);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(18), ElfConstants.EmX86_64);
        return h;
    }
}
