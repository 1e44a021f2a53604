using System.Security.Cryptography;

namespace Ferry.Enclave.Confidential.Tests;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class SoftwareBackendTests
{
    [Fact]
    public void Creates_a_private_key_file_on_first_use_and_reuses_it()
    {
        using var dir = new TempDir();
        var state = dir.Sub("agent-state");
        byte[] id;
        using (var tee = SoftwareTeeBackend.OpenOrCreate(state))
        {
            id = tee.PlatformId;
            Assert.Equal(SHA256.HashData(tee.PublicKey), id);
        }
        var key = Path.Combine(state, SoftwareTeeBackend.KeyFileName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(state));
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", File.ReadAllText(key));
        using var again = SoftwareTeeBackend.OpenOrCreate(state);
        Assert.Equal(id, again.PlatformId);
        using var other = SoftwareTeeBackend.OpenOrCreate(dir.Sub("other-host"));
        Assert.NotEqual(id, other.PlatformId);
    }

    [Fact]
    public void Concurrent_first_use_agrees_on_one_key()
    {
        using var dir = new TempDir();
        var ids = new string[8];
        Parallel.For(0, ids.Length, i =>
        {
            using var tee = SoftwareTeeBackend.OpenOrCreate(dir.Sub("state"));
            ids[i] = Convert.ToHexString(tee.PlatformId);
        });
        Assert.Single(ids.Distinct());
        Assert.Single(Directory.GetFiles(dir.Sub("state")));
    }

    [Fact]
    public void Refuses_a_key_readable_by_others()
    {
        using var dir = new TempDir();
        SoftwareTeeBackend.OpenOrCreate(dir.Path).Dispose();
        var key = Path.Combine(dir.Path, SoftwareTeeBackend.KeyFileName);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var e = Assert.Throws<PlatformKeyException>(() => SoftwareTeeBackend.Open(dir.Path));
        Assert.Contains("chmod 600", e.Message);
        Assert.Contains("644", e.Message);
    }

    [Fact]
    public void Refuses_a_corrupt_key_with_a_clear_error()
    {
        using var dir = new TempDir();
        var key = Path.Combine(dir.Path, SoftwareTeeBackend.KeyFileName);
        File.WriteAllText(key, "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n");
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var e = Assert.Throws<PlatformKeyException>(() => SoftwareTeeBackend.OpenOrCreate(dir.Path));
        Assert.Contains("corrupt", e.Message);
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void Refuses_a_key_of_another_curve()
    {
        using var dir = new TempDir();
        var key = Path.Combine(dir.Path, SoftwareTeeBackend.KeyFileName);
        using (var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384)) File.WriteAllText(key, p384.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var e = Assert.Throws<PlatformKeyException>(() => SoftwareTeeBackend.Open(dir.Path));
        Assert.Contains("P-256", e.Message);
    }

    [Fact]
    public void Refuses_an_unreadable_key()
    {
        using var dir = new TempDir();
        // A directory where the key file should be: unreadable as a file even for root.
        Directory.CreateDirectory(Path.Combine(dir.Path, SoftwareTeeBackend.KeyFileName), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var e = Assert.Throws<PlatformKeyException>(() => SoftwareTeeBackend.Open(dir.Path));
        Assert.Contains("cannot read platform key", e.Message);
    }

    [Fact]
    public void Reports_a_missing_key_when_not_asked_to_create_one()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<PlatformKeyException>(() => SoftwareTeeBackend.Open(dir.Path));
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Platform_sealing_round_trips_and_binds_platform_and_context()
    {
        using var fleet = new Fleet("a", "b");
        var a = fleet.Host("a");
        var blob = a.SealToPlatform("epoch 7"u8, "context-1"u8);
        Assert.Equal("epoch 7"u8.ToArray(), a.UnsealFromPlatform(blob, "context-1"u8));
        Assert.Equal(-1, Bytes.Find(blob, "epoch 7"u8));

        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => a.UnsealFromPlatform(blob, "context-2"u8)).Failure);
        Assert.Equal(SealedDataFailure.WrongPlatform, Assert.Throws<SealedDataException>(() => fleet.Host("b").UnsealFromPlatform(blob, "context-1"u8)).Failure);
        for (var i = 0; i < blob.Length; i++)
        {
            var bad = blob.ToArray();
            bad[i] ^= 0x40;
            var e = Assert.Throws<SealedDataException>(() => a.UnsealFromPlatform(bad, "context-1"u8));
            Assert.True(e.Failure is SealedDataFailure.Tampered or SealedDataFailure.Malformed or SealedDataFailure.WrongPlatform, $"byte {i}: {e.Failure}");
        }
        Assert.Equal(SealedDataFailure.Malformed, Assert.Throws<SealedDataException>(() => a.UnsealFromPlatform(blob.AsSpan(0, 20), "context-1"u8)).Failure);
        Assert.Equal(SealedDataFailure.Tampered, Assert.Throws<SealedDataException>(() => a.UnsealFromPlatform(blob.AsSpan(0, blob.Length - 1), "context-1"u8)).Failure);
    }

    [Fact]
    public void Platform_sealing_key_survives_a_restart_of_the_backend()
    {
        using var dir = new TempDir();
        byte[] blob;
        using (var tee = SoftwareTeeBackend.OpenOrCreate(dir.Path)) blob = tee.SealToPlatform([1, 2, 3], []);
        using var reopened = SoftwareTeeBackend.Open(dir.Path);
        Assert.Equal([1, 2, 3], reopened.UnsealFromPlatform(blob, []));
    }
}
