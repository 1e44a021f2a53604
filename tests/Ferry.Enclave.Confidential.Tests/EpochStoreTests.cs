namespace Ferry.Enclave.Confidential.Tests;

public sealed class EpochStoreTests : IDisposable
{
    private readonly Fleet fleet = new("a", "b");
    private readonly WorkloadIdentity workload = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);

    public void Dispose() => fleet.Dispose();

    [Fact]
    public void Accepts_only_newer_epochs_and_remembers_them_across_restarts()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        Assert.Null(store.LastAccepted(workload));
        Assert.True(store.TryAccept(workload, 1));
        Assert.False(store.TryAccept(workload, 1));
        Assert.False(store.TryAccept(workload, 0));
        Assert.True(store.TryAccept(workload, 5));
        Assert.False(store.TryAccept(workload, 4));

        using var restarted = SoftwareTeeBackend.Open(fleet.StateDir("a"));
        var again = new EpochStore(restarted, fleet.StateDir("a"));
        Assert.Equal(5ul, again.LastAccepted(workload));
        Assert.False(again.TryAccept(workload, 5));
        Assert.True(again.TryAccept(workload, 6));
    }

    [Fact]
    public void Identities_have_separate_epoch_lines()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        var replica = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);
        var other = new WorkloadIdentity(Fleet.OtherMeasurement, workload.InstanceId);
        Assert.True(store.TryAccept(workload, 9));
        Assert.True(store.TryAccept(replica, 2));
        Assert.True(store.TryAccept(other, 1));
        Assert.Equal(9ul, store.LastAccepted(workload));
        Assert.NotEqual(workload, replica);
        Assert.Equal(workload, WorkloadIdentity.Decode(workload.Encode()));
    }

    [Fact]
    public void A_modified_epoch_file_is_refused_not_guessed()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        store.TryAccept(workload, 7);
        var path = store.PathOf(workload);
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 1;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<EpochStoreException>(() => store.TryAccept(workload, 3));
        Assert.Contains("does not unseal", e.Message);
        Assert.Throws<EpochStoreException>(() => store.LastAccepted(workload));
    }

    [Fact]
    public void Another_identitys_file_copied_over_is_refused()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        var replica = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);
        store.TryAccept(workload, 9);
        store.TryAccept(replica, 1);
        File.Copy(store.PathOf(replica), store.PathOf(workload), overwrite: true);
        Assert.Throws<EpochStoreException>(() => store.LastAccepted(workload));
    }

    [Fact]
    public void Another_hosts_file_is_refused()
    {
        var a = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        var b = new EpochStore(fleet.Host("b"), fleet.StateDir("b"));
        a.TryAccept(workload, 1);
        b.TryAccept(workload, 9);
        File.Copy(b.PathOf(workload), a.PathOf(workload), overwrite: true);
        var e = Assert.Throws<EpochStoreException>(() => a.LastAccepted(workload));
        Assert.Contains("another platform", e.Message);
    }

    /// <summary>
    /// The documented gap of the software backend: a host that deletes the files or puts back older copies of them
    /// rolls the epoch back. This test pins the limitation so that a fix (a monotonic counter) shows up here.
    /// </summary>
    [Fact]
    public void Known_gap_a_host_can_delete_or_revert_the_file()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        store.TryAccept(workload, 3);
        var old = File.ReadAllBytes(store.PathOf(workload));
        store.TryAccept(workload, 8);
        File.WriteAllBytes(store.PathOf(workload), old);
        Assert.Equal(3ul, store.LastAccepted(workload));
        File.Delete(store.PathOf(workload));
        File.Delete(store.PreviousPathOf(workload));
        Assert.Null(store.LastAccepted(workload));
    }

    /// <summary>
    /// A staging sets the epoch file aside so that its commit renames to a free name (replacing a file is the slow
    /// rename on ext4, and the commit happens inside a migration's downtime); the set-aside file keeps counting, so
    /// the last accepted epoch never goes missing, also not when the staging is abandoned.
    /// </summary>
    [Fact]
    public void A_staging_sets_the_epoch_file_aside_and_it_still_counts()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        Assert.True(store.TryAccept(workload, 5));
        using (var staged = store.Stage(workload, 6))
        {
            Assert.False(File.Exists(store.PathOf(workload)));
            Assert.True(File.Exists(store.PreviousPathOf(workload)));
            Assert.Equal(5ul, new EpochStore(fleet.Host("a"), fleet.StateDir("a")).LastAccepted(workload));
            Assert.True(staged.Commit());
        }
        Assert.Equal(6ul, store.LastAccepted(workload));
        using (store.Stage(workload, 7))
        {
        }
        Assert.False(File.Exists(store.PathOf(workload)));
        Assert.Equal(6ul, store.LastAccepted(workload));
        Assert.False(store.TryAccept(workload, 6));
        Assert.True(store.TryAccept(workload, 7));

        // A set-aside file that does not unseal is refused like the epoch file itself.
        var aside = File.ReadAllBytes(store.PreviousPathOf(workload));
        aside[^3] ^= 1;
        File.WriteAllBytes(store.PreviousPathOf(workload), aside);
        Assert.Throws<EpochStoreException>(() => store.LastAccepted(workload));
    }

    [Fact]
    public void Concurrent_accepts_of_the_same_epoch_admit_exactly_one()
    {
        var stores = Enumerable.Range(0, 8).Select(_ => new EpochStore(fleet.Host("a"), fleet.StateDir("a"))).ToArray();
        for (ulong epoch = 1; epoch <= 20; epoch++)
        {
            var wins = 0;
            Parallel.ForEach(stores, s =>
            {
                if (s.TryAccept(workload, epoch)) Interlocked.Increment(ref wins);
            });
            Assert.Equal(1, wins);
        }
        Assert.Equal(20ul, stores[0].LastAccepted(workload));
    }

    /// <summary>
    /// A staged epoch (written while a migration's destination gets ready) accepts nothing until its commit, which
    /// still refuses an epoch that is no longer newer (another copy committed first: a fork); an abandoned one leaves
    /// no file.
    /// </summary>
    [Fact]
    public async Task A_staged_epoch_is_accepted_only_at_its_commit_and_only_if_still_newer()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        Assert.True(store.TryAccept(workload, 1));

        using (var staged = store.Stage(workload, 2))
        {
            Assert.Equal(1ul, staged.LastAccepted);
            Assert.Equal(1ul, store.LastAccepted(workload));
            Assert.True(staged.Commit());
        }
        Assert.Equal(2ul, new EpochStore(fleet.Host("a"), fleet.StateDir("a")).LastAccepted(workload));

        // Two copies of epoch 3 staged (a fork attempt, the second as another runtime would): the second waits
        // for the identity's lock, which the first holds until its commit, and then sees epoch 3 taken.
        using var first = store.Stage(workload, 3);
        var secondStaging = Task.Run(() => new EpochStore(fleet.Host("a"), fleet.StateDir("a")).Stage(workload, 3));
        await Task.Delay(300);
        Assert.False(secondStaging.IsCompleted, "the second copy staged while the first held the identity's lock");
        Assert.True(first.Commit());
        using var second = await secondStaging.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(3ul, second.LastAccepted);
        Assert.False(second.Commit());
        Assert.Equal(3ul, store.LastAccepted(workload));

        // Abandoned: nothing accepted, no staged file left, and the lock is free again.
        using (store.Stage(workload, 9))
        {
        }
        Assert.Equal(3ul, store.LastAccepted(workload));
        Assert.Empty(Directory.GetFiles(store.Directory, "*.staged-*"));
        Assert.Empty(Directory.GetFiles(store.Directory, "*.tmp-*"));
        Assert.True(store.TryAccept(workload, 4));
    }

    /// <summary>
    /// A staged epoch holds its identity's lock from the staging to the commit (a migration's whole pre-copy), so
    /// that the commit inside the downtime reads nothing: other workloads' epochs on the host must not wait for it.
    /// </summary>
    [Fact]
    public void A_staged_epoch_does_not_hold_up_other_identities()
    {
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        var replica = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);
        using var staged = store.Stage(workload, 1);
        using var replicaStaged = store.Stage(replica, 4);
        Assert.True(store.TryAccept(new WorkloadIdentity(Fleet.OtherMeasurement, workload.InstanceId), 2));
        Assert.True(replicaStaged.Commit());
        Assert.True(staged.Commit());
        Assert.Equal(1ul, store.LastAccepted(workload));
        Assert.Equal(4ul, store.LastAccepted(replica));
    }

    [Fact]
    public async Task An_accept_waits_for_the_lock_another_process_holds()
    {
        // Runtimes in separate processes serialise on the identity's lock file (an exclusive advisory lock); this
        // handle plays the other process.
        var store = new EpochStore(fleet.Host("a"), fleet.StateDir("a"));
        store.TryAccept(workload, 1);
        Task<bool> pending;
        using (new FileStream(store.LockPathOf(workload), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            pending = Task.Run(() => store.TryAccept(workload, 2));
            await Task.Delay(300);
            Assert.False(pending.IsCompleted, "TryAccept did not wait for the lock");
            Assert.Equal(1ul, new EpochStore(fleet.Host("a"), fleet.StateDir("a")).LastAccepted(workload));
        }
        Assert.True(await pending.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(2ul, store.LastAccepted(workload));
    }
}
