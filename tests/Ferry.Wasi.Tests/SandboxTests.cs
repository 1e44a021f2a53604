using Ferry.Wasm.Wasi;

namespace Ferry.Wasi.Tests;

/// <summary>
/// A preopen is a sandbox: "..", absolute paths and symlinks can never reach outside it, for any path function.
/// Each escape is attempted at the ABI level and must fail without touching the outside.
/// </summary>
public sealed class SandboxTests : IDisposable
{
    private readonly TempDir outer = new();
    private readonly Abi abi;
    private const int Root = 3;
    private readonly string secret;

    public SandboxTests()
    {
        Directory.CreateDirectory(outer["box/sub"]);
        secret = outer["secret"];
        File.WriteAllText(secret, "outside");
        File.WriteAllText(outer["box/inside"], "inside");
        File.CreateSymbolicLink(outer["box/rel-out"], "../secret");
        File.CreateSymbolicLink(outer["box/abs-out"], secret);
        File.CreateSymbolicLink(outer["box/dir-out"], "..");
        File.CreateSymbolicLink(outer["box/sub/ok"], "../inside");
        abi = new Abi(new WasiOptions { Preopens = [new WasiPreopen(outer["box"], ".")] });
    }

    public void Dispose()
    {
        abi.Dispose();
        outer.Dispose();
    }

    private void OutsideUntouched()
    {
        Assert.Equal("outside", File.ReadAllText(secret));
        Assert.Equal(["box", "secret"], Directory.GetFileSystemEntries(outer.Path).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData("../secret")]
    [InlineData("sub/../../secret")]
    [InlineData("/etc/passwd")]
    [InlineData("rel-out")]
    [InlineData("abs-out")]
    [InlineData("dir-out/secret")]
    [InlineData("sub/../dir-out/box/inside")]
    public void Open_cannot_escape(string path)
    {
        Assert.Equal(Errno.NotCapable, abi.Open(Root, path).Err);
        Assert.Equal(Errno.NotCapable, abi.Open(Root, path, OFlags.Creat | OFlags.Trunc).Err);
        OutsideUntouched();
    }

    [Fact]
    public void Open_of_an_absolute_host_path_is_refused()
    {
        Assert.Equal(Errno.NotCapable, abi.Open(Root, secret).Err);
        Assert.Equal(Errno.NotCapable, abi.Open(Root, outer["box/inside"]).Err);
    }

    [Fact]
    public void Symlinks_and_dotdot_that_stay_inside_work()
    {
        Assert.Equal(Errno.Success, abi.Open(Root, "sub/ok").Err);
        Assert.Equal(Errno.Success, abi.Open(Root, "sub/../inside").Err);
        // The escaping link itself can be inspected, not followed.
        var st = abi.Alloc(64);
        var (p, l) = abi.Str("rel-out");
        Assert.Equal(Errno.Success, abi.Call("path_filestat_get", Root, 0, p, l, st));
        Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_get", Root, 1, p, l, st));
    }

    [Fact]
    public void Stat_and_times_of_dotdot_are_refused()
    {
        var st = abi.Alloc(64);
        foreach (var path in new[] { "..", "sub/../..", "../box" })
        {
            var (p, l) = abi.Str(path);
            Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_get", Root, 0, p, l, st));
            Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_get", Root, 1, p, l, st));
            Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_set_times", Root, 0, p, l, 0L, 0L, 2 | 8));
            Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_set_times", Root, 1, p, l, 0L, 0L, 2 | 8));
        }
        var before = Directory.GetLastWriteTimeUtc(outer.Path);
        var (q, ql) = abi.Str("dir-out");
        Assert.Equal(Errno.NotCapable, abi.Call("path_filestat_set_times", Root, 1, q, ql, 0L, 0L, 1 | 4));
        Assert.Equal(before, Directory.GetLastWriteTimeUtc(outer.Path));
    }

    [Theory]
    [InlineData("path_create_directory", "../evil")]
    [InlineData("path_create_directory", "dir-out/evil")]
    [InlineData("path_unlink_file", "../secret")]
    [InlineData("path_unlink_file", "dir-out/secret")]
    [InlineData("path_remove_directory", "..")]
    [InlineData("path_remove_directory", "../box")]
    [InlineData("path_create_directory", "/tmp/evil")]
    public void Directory_operations_cannot_escape(string function, string path)
    {
        Assert.Equal(Errno.NotCapable, abi.PathCall(function, Root, path));
        OutsideUntouched();
    }

    [Theory]
    [InlineData("inside", "../stolen")]
    [InlineData("inside", "dir-out/stolen")]
    [InlineData("../secret", "stolen")]
    [InlineData("rel-out/x", "stolen")]
    public void Rename_and_link_cannot_leave_or_reach_out(string from, string to)
    {
        var (o, ol) = abi.Str(from);
        var (n, nl) = abi.Str(to);
        Assert.Equal(Errno.NotCapable, abi.Call("path_rename", Root, o, ol, Root, n, nl));
        Assert.Equal(Errno.NotCapable, abi.Call("path_link", Root, 0, o, ol, Root, n, nl));
        Assert.Equal("inside", File.ReadAllText(outer["box/inside"]));
        Assert.False(File.Exists(outer["box/stolen"]));
        OutsideUntouched();
    }

    [Fact]
    public void A_hard_link_that_follows_a_symlink_out_is_refused()
    {
        var (o, ol) = abi.Str("abs-out");
        var (n, nl) = abi.Str("copy");
        Assert.Equal(Errno.NotCapable, abi.Call("path_link", Root, 1, o, ol, Root, n, nl));
        var (r, rl) = abi.Str("rel-out");
        Assert.Equal(Errno.NotCapable, abi.Call("path_link", Root, 1, r, rl, Root, n, nl));
        Assert.False(File.Exists(outer["box/copy"]));
        // Without following, the link itself is linked (it stays a link, inside).
        Assert.Equal(Errno.Success, abi.Call("path_link", Root, 0, r, rl, Root, n, nl));
        Assert.Equal("../secret", new FileInfo(outer["box/copy"]).LinkTarget);
        OutsideUntouched();
    }

    [Fact]
    public void Symlinks_with_absolute_targets_cannot_be_created_and_relative_ones_cannot_be_followed_out()
    {
        var (t, tl) = abi.Str(secret);
        var (n, nl) = abi.Str("new-link");
        Assert.Equal(Errno.NotCapable, abi.Call("path_symlink", t, tl, Root, n, nl));
        var (rt, rtl) = abi.Str("../../..");
        Assert.Equal(Errno.Success, abi.Call("path_symlink", rt, rtl, Root, n, nl));
        Assert.Equal(Errno.NotCapable, abi.Open(Root, "new-link/etc/passwd").Err);
        var (e, el) = abi.Str("../escape-link");
        Assert.Equal(Errno.NotCapable, abi.Call("path_symlink", rt, rtl, Root, e, el));
        OutsideUntouched();
    }

    [Fact]
    public void Readlink_through_an_escaping_parent_is_refused()
    {
        var buf = abi.Alloc(64);
        var used = abi.Alloc(4);
        var (p, l) = abi.Str("dir-out/box/rel-out");
        Assert.Equal(Errno.NotCapable, abi.Call("path_readlink", Root, p, l, buf, 64, used));
    }

    [Fact]
    public void A_directory_descriptor_is_itself_a_sandbox()
    {
        // As in cap-std/wasmtime: paths relative to a descriptor cannot climb above it, even to its preopen.
        var (e, sub) = abi.Open(Root, "sub", OFlags.Directory, Rights.FdReaddir | Rights.PathOpen);
        Assert.Equal(Errno.Success, e);
        Assert.Equal(Errno.NotCapable, abi.Open(sub, "../../secret").Err);
        Assert.Equal(Errno.NotCapable, abi.Open(sub, "../inside").Err);
        // ... and a symlink in it that climbs out of it is refused too; plain names work.
        Assert.Equal(Errno.NotCapable, abi.Open(sub, "ok").Err);
        File.WriteAllText(outer["box/sub/plain"], "p");
        Assert.Equal(Errno.Success, abi.Open(sub, "plain").Err);
        OutsideUntouched();
    }
}
