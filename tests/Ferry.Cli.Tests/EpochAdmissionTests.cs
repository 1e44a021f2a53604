using Ferry.Cli.Runtime;
using Ferry.Enclave.Confidential;
using Ferry.Enclave.Migration;

namespace Ferry.Cli.Tests;

/// <summary>
/// The destination's anti-rollback admission of confidential state (<see cref="EpochAdmission"/>): it decides from the
/// epoch staged at the source's intent, and a staging that failed refuses the state at the admission — before Ready,
/// while the source can still resume on its own — not at the commit.
/// </summary>
public sealed class EpochAdmissionTests : IDisposable
{
    private static readonly byte[] Measurement = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];
    private readonly string dir = Directory.CreateTempSubdirectory("ferry-admission-").FullName;
    private readonly SoftwareTeeBackend tee;
    private readonly WorkloadIdentity workload = WorkloadIdentity.NewInstance(Measurement);

    public EpochAdmissionTests() => tee = SoftwareTeeBackend.OpenOrCreate(dir);

    public void Dispose()
    {
        tee.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    private static MigrationRecords.StateRecord State(WorkloadIdentity identity, ulong epoch) => new()
    {
        FrozenAtUnixNanos = 0,
        FinalRound = 0,
        BatchesPerStream = [],
        ModuleSha256 = new byte[32],
        Globals = [],
        Tables = [],
        DroppedData = [],
        DroppedElements = [],
        Frames = [],
        MemoryBytes = 0,
        Environment = [],
        Epoch = epoch,
        Identity = identity.Encode(),
    };

    [Fact]
    public void Staged_at_the_intent_admitted_and_committed_without_reading_the_store_again()
    {
        var durable = new EpochStore(tee, dir);
        Assert.True(durable.TryAccept(workload, 4));
        var store = new CountingStore(durable);
        using var admission = new EpochAdmission(store, Measurement);
        admission.Anticipate(workload.Encode(), 5);
        store.WaitForStaging();
        var readsBefore = store.Reads;
        admission.Admit(State(workload, 5));
        admission.Commit();
        Assert.Equal(readsBefore, store.Reads);
        Assert.Equal(5ul, durable.LastAccepted(workload));
    }

    [Fact]
    public void A_state_that_does_not_match_the_intent_is_staged_anew_and_checked_in_full()
    {
        var durable = new EpochStore(tee, dir);
        var announced = WorkloadIdentity.NewInstance(Measurement);
        using (var admission = new EpochAdmission(durable, Measurement))
        {
            admission.Anticipate(announced.Encode(), 3);
            admission.Admit(State(workload, 3)); // another instance than announced
            admission.Commit();
        }
        Assert.Equal(3ul, durable.LastAccepted(workload));
        Assert.Null(durable.LastAccepted(announced));

        using (var admission = new EpochAdmission(durable, Measurement))
        {
            admission.Anticipate(workload.Encode(), 4);
            admission.Admit(State(workload, 5)); // another epoch than announced
            admission.Commit();
        }
        Assert.Equal(5ul, durable.LastAccepted(workload));

        var foreign = WorkloadIdentity.NewInstance([.. Enumerable.Repeat((byte)7, 32)]);
        using (var admission = new EpochAdmission(durable, Measurement))
        {
            admission.Anticipate(workload.Encode(), 6);
            var e = Assert.Throws<MigrationIntegrityException>(() => admission.Admit(State(foreign, 6)));
            Assert.Contains("another measurement", e.Message);
        }
    }

    [Fact]
    public void A_stale_epoch_is_refused_at_the_admission()
    {
        var durable = new EpochStore(tee, dir);
        Assert.True(durable.TryAccept(workload, 9));
        using var admission = new EpochAdmission(durable, Measurement);
        admission.Anticipate(workload.Encode(), 5);
        var e = Assert.Throws<MigrationIntegrityException>(() => admission.Admit(State(workload, 5)));
        Assert.Contains("stale epoch", e.Message);
        Assert.Equal(9ul, durable.LastAccepted(workload));
    }

    [Fact]
    public void A_failed_staging_refuses_the_state_at_the_admission_not_at_the_commit()
    {
        // With an intent (staged in the background) and without one (staged at the admission).
        foreach (var anticipate in new[] { true, false })
        {
            using var admission = new EpochAdmission(new FailingStore(), Measurement);
            if (anticipate) admission.Anticipate(workload.Encode(), 2);
            var e = Assert.Throws<EpochStoreException>(() => admission.Admit(State(workload, 2)));
            Assert.Contains("disk full", e.Message);
            Assert.Null(admission.Identity);
        }
    }

    /// <summary>Counts reads of the last accepted epoch outside stagings.</summary>
    private sealed class CountingStore(EpochStore inner) : IEpochStore
    {
        private readonly TaskCompletionSource staged = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Reads { get; private set; }

        public ulong? LastAccepted(WorkloadIdentity identity)
        {
            Reads++;
            return inner.LastAccepted(identity);
        }

        public bool TryAccept(WorkloadIdentity identity, ulong epoch) => inner.TryAccept(identity, epoch);

        public IStagedEpoch Stage(WorkloadIdentity identity, ulong epoch)
        {
            var s = inner.Stage(identity, epoch);
            staged.TrySetResult();
            return s;
        }

        public void WaitForStaging() => Assert.True(staged.Task.Wait(TimeSpan.FromSeconds(30)), "the intent was never staged");
    }

    private sealed class FailingStore : IEpochStore
    {
        public ulong? LastAccepted(WorkloadIdentity identity) => null;

        public bool TryAccept(WorkloadIdentity identity, ulong epoch) => throw new EpochStoreException("disk full");

        public IStagedEpoch Stage(WorkloadIdentity identity, ulong epoch) => throw new EpochStoreException("disk full");
    }
}
