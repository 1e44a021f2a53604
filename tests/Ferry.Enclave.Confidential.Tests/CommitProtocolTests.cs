using Xunit.Abstractions;

namespace Ferry.Enclave.Confidential.Tests;

/// <summary>An in-memory epoch store (one host's), for protocol tests.</summary>
public sealed class MemoryEpochStore(ulong? last = null) : IEpochStore
{
    public ulong? Last { get; private set; } = last;
    public int Accepts { get; private set; }
    public ulong? LastAccepted(WorkloadIdentity identity) => Last;

    public bool TryAccept(WorkloadIdentity identity, ulong epoch)
    {
        if (Last.HasValue && epoch <= Last.Value) return false;
        Last = epoch;
        Accepts++;
        return true;
    }

    public MemoryEpochStore Clone() => new(Last) { Accepts = Accepts };
}

public class CommitProtocolTests(ITestOutputHelper output)
{
    private static readonly WorkloadIdentity Workload = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);

    [Fact]
    public void The_happy_path_moves_the_workload_and_its_epoch()
    {
        var src = MigrationCommitProtocol.ForSource(Workload, epoch: 4);
        var dst = MigrationCommitProtocol.ForDestination(Workload);
        var store = new MemoryEpochStore(last: 2);
        Assert.True(src.GuestMayRun);
        var epoch = src.BeginExport();
        Assert.Equal(5ul, epoch);
        Assert.True(src.GuestMayRun); // pre-copy keeps running while pages go
        Assert.False(dst.GuestMayRun);
        var ready = dst.StateComplete(epoch, store);
        Assert.Equal(new CommitMessage(CommitMessageKind.Ready, 5), ready);
        Assert.False(dst.GuestMayRun);
        var commit = src.OnReady(CommitMessage.Decode(ready.Encode()));
        Assert.Equal(SourcePhase.Committed, src.Phase);
        Assert.False(src.GuestMayRun);
        var ack = dst.OnCommit(CommitMessage.Decode(commit.Encode()), store);
        Assert.True(dst.GuestMayRun);
        Assert.Equal(5ul, store.Last);
        src.OnAck(ack);
        Assert.True(src.Acknowledged);
        Assert.Null(src.Retransmit());
    }

    [Fact]
    public void The_source_cannot_abort_once_it_committed()
    {
        var src = new SourceCommitProtocol(Workload, 1);
        src.BeginExport();
        src.OnReady(new CommitMessage(CommitMessageKind.Ready, 2));
        Assert.False(src.TryAbort(out _));
        Assert.False(src.GuestMayRun);
        Assert.Equal(new CommitMessage(CommitMessageKind.Commit, 2), src.Retransmit());
        // A duplicated Ready gets the commit again, never a change of mind.
        Assert.Equal(CommitMessageKind.Commit, src.OnReady(new CommitMessage(CommitMessageKind.Ready, 2)).Kind);
    }

    [Fact]
    public void After_an_abort_only_the_source_runs()
    {
        var src = new SourceCommitProtocol(Workload, 1);
        var dst = new DestinationCommitProtocol(Workload);
        var store = new MemoryEpochStore();
        src.BeginExport();
        dst.StateComplete(2, store);
        Assert.True(src.TryAbort(out var abort));
        Assert.True(src.GuestMayRun);
        // A late Ready is answered with the abort again.
        Assert.Equal(CommitMessageKind.Abort, src.OnReady(new CommitMessage(CommitMessageKind.Ready, 2)).Kind);
        dst.OnAbort(abort);
        Assert.Equal(DestinationPhase.Discarded, dst.Phase);
        Assert.Throws<CommitProtocolException>(() => dst.OnCommit(new CommitMessage(CommitMessageKind.Commit, 2), store));
        Assert.False(dst.GuestMayRun);
        Assert.Null(store.Last);
    }

    [Fact]
    public void State_that_is_not_newer_than_the_hosts_last_is_refused()
    {
        var store = new MemoryEpochStore(last: 5);
        var dst = new DestinationCommitProtocol(Workload);
        var e = Assert.Throws<CommitProtocolException>(() => dst.StateComplete(5, store));
        Assert.Equal(CommitFailure.StaleEpoch, e.Reason);
        Assert.Contains("rollback", e.Message);
        Assert.Equal(DestinationPhase.Discarded, dst.Phase);

        // The store moved on between Ready and Commit (a second copy got in first): refuse to run.
        var racing = new DestinationCommitProtocol(Workload);
        var store2 = new MemoryEpochStore(last: 1);
        racing.StateComplete(3, store2);
        store2.TryAccept(Workload, 3);
        Assert.Equal(CommitFailure.StaleEpoch, Assert.Throws<CommitProtocolException>(() => racing.OnCommit(new CommitMessage(CommitMessageKind.Commit, 3), store2)).Reason);
        Assert.False(racing.GuestMayRun);
    }

    [Fact]
    public void Messages_for_another_epoch_or_phase_are_refused()
    {
        var src = new SourceCommitProtocol(Workload, 1);
        Assert.Equal(CommitFailure.InvalidTransition, Assert.Throws<CommitProtocolException>(() => src.OnReady(new CommitMessage(CommitMessageKind.Ready, 2))).Reason);
        src.BeginExport();
        Assert.Equal(CommitFailure.WrongEpoch, Assert.Throws<CommitProtocolException>(() => src.OnReady(new CommitMessage(CommitMessageKind.Ready, 3))).Reason);
        Assert.Equal(CommitFailure.InvalidTransition, Assert.Throws<CommitProtocolException>(() => src.OnAck(new CommitMessage(CommitMessageKind.Ack, 2))).Reason);
        var dst = new DestinationCommitProtocol(Workload);
        var store = new MemoryEpochStore();
        Assert.Equal(CommitFailure.InvalidTransition, Assert.Throws<CommitProtocolException>(() => dst.OnCommit(new CommitMessage(CommitMessageKind.Commit, 2), store)).Reason);
        dst.StateComplete(2, store);
        Assert.Equal(CommitFailure.WrongEpoch, Assert.Throws<CommitProtocolException>(() => dst.OnCommit(new CommitMessage(CommitMessageKind.Commit, 7), store)).Reason);
        dst.OnCommit(new CommitMessage(CommitMessageKind.Commit, 2), store);
        Assert.Equal(CommitFailure.InvalidTransition, Assert.Throws<CommitProtocolException>(() => dst.OnAbort(new CommitMessage(CommitMessageKind.Abort, 2))).Reason);
        Assert.True(dst.GuestMayRun);
        Assert.Equal(CommitFailure.Malformed, Assert.Throws<CommitProtocolException>(() => CommitMessage.Decode([1, 2, 3])).Reason);
        Assert.Equal(CommitFailure.Malformed, Assert.Throws<CommitProtocolException>(() => CommitMessage.Decode([.. "FCMT"u8, 9, 0, 0, 0, 0, 0, 0, 0, 0])).Reason);
    }

    // ─────────────────────────── exhaustive exploration ───────────────────────────

    [Fact]
    public void No_interleaving_of_loss_duplication_reordering_and_crashes_runs_two_copies()
    {
        foreach (var initial in new ulong?[] { null, 4 }) // destination host: never saw this epoch; already accepted it
        {
            var report = new CommitExplorer(Mutant.None, storeInitial: initial).Run();
            output.WriteLine($"1 attempt, 2 losses, 2 duplications, store {initial?.ToString() ?? "empty"}: {report.States} states, {report.DestinationRanStates} with the destination running, {report.LostBeforeRunningStates} lost between commit and start (destination crash)");
            Assert.True(report.Violations.Count == 0, $"store {initial}: " + string.Join("\n\n", report.Violations.Take(3)));
            Assert.True(report.States > 300, $"only {report.States} states explored");
            if (initial == 4)
            {
                Assert.Equal(0, report.DestinationRanStates); // a stale epoch never runs
            }
            else
            {
                Assert.True(report.DestinationRanStates > 0);
                // The one outcome with no copy running: the destination died after the source committed, before it
                // ran. It exists (the model is not vacuous) and is the documented availability gap.
                Assert.True(report.LostOnlyAfterCommitAndDestinationCrash);
                Assert.True(report.LostBeforeRunningStates > 0);
            }
        }
    }

    [Fact]
    public void Retrying_after_an_abort_with_the_same_epoch_is_safe()
    {
        // Two attempts to the same destination host: the first destination may linger in Ready (its abort lost)
        // while the second attempt exports the same epoch.
        var report = new CommitExplorer(Mutant.None, storeInitial: null, attempts: 2, maxDrops: 1, maxDups: 1).Run();
        output.WriteLine($"2 attempts, 1 loss, 1 duplication: {report.States} states, {report.DestinationRanStates} with a destination running");
        Assert.True(report.Violations.Count == 0, string.Join("\n\n", report.Violations.Take(3)));
        Assert.True(report.States > 5000, $"only {report.States} states explored");
        Assert.True(report.LostOnlyAfterCommitAndDestinationCrash);
    }

    [Fact]
    public void The_explorer_finds_a_source_that_resumes_after_commit()
    {
        var report = new CommitExplorer(Mutant.SourceResumesOnTimeoutAfterCommit, storeInitial: null, stopAtFirstViolation: true).Run();
        Assert.NotEmpty(report.Violations);
        output.WriteLine(report.Violations[0]);
        Assert.Contains("two copies", report.Violations[0]);
    }

    [Fact]
    public void The_explorer_finds_a_destination_that_runs_before_the_commit()
    {
        var report = new CommitExplorer(Mutant.DestinationRunsWhenReady, storeInitial: null, stopAtFirstViolation: true).Run();
        Assert.NotEmpty(report.Violations);
        output.WriteLine(report.Violations[0]);
        Assert.Contains("two copies", report.Violations[0]);
    }

    [Fact]
    public void The_explorer_finds_a_destination_that_skips_the_epoch_check()
    {
        var report = new CommitExplorer(Mutant.DestinationIgnoresEpochStore, storeInitial: 4, stopAtFirstViolation: true).Run();
        Assert.NotEmpty(report.Violations);
        output.WriteLine(report.Violations[0]);
        Assert.Contains("stale epoch", report.Violations[0]);
    }
}

public enum Mutant
{
    None,
    /// <summary>A buggy integration: on a timeout after commit the source resumes anyway (ignores TryAbort's false).</summary>
    SourceResumesOnTimeoutAfterCommit,
    /// <summary>A buggy integration: the destination starts the guest as soon as it holds the state.</summary>
    DestinationRunsWhenReady,
    /// <summary>A buggy integration: the destination does not consult the epoch store.</summary>
    DestinationIgnoresEpochStore,
}

/// <param name="LostBeforeRunningStates">Settled states where no copy runs because the destination crashed after the commit, before it ran.</param>
public sealed record ExplorerReport(int States, List<string> Violations, int DestinationRanStates, int LostBeforeRunningStates, bool LostOnlyAfterCommitAndDestinationCrash);

/// <summary>
/// Breadth-first exploration of every interleaving of a migration, driving the real <see cref="SourceCommitProtocol"/>
/// and <see cref="DestinationCommitProtocol"/>. After an abort the source may try again (up to
/// <c>attempts</c> attempts) to a fresh destination runtime on the same destination host (same epoch store); each
/// attempt has its own session, so its messages reach only its own destination. Channels are unordered multisets
/// (any reordering); faults: up to <c>maxDrops</c> message losses and <c>maxDups</c> duplications, one crash of the
/// source and one of a destination, at any point; the source may time out (abort) at any point before it commits; both sides
/// retransmit. The state transfer is one message: records and the manifest make partial state impossible to
/// accept, so it arrives whole or not at all.
/// Checked in every reachable state: at most one copy may run (a destination runs only after its source committed);
/// once a destination ran, the source never runs again; the host accepts an epoch at most once and never a stale
/// one. Checked over the whole graph: from every crash-free state, a fault-free path leads to exactly one copy
/// running with nothing pending (no deadlock, no lost workload without a crash).
/// </summary>
public sealed class CommitExplorer(Mutant mutant, ulong? storeInitial, int attempts = 1, int maxDrops = 2, int maxDups = 2, bool stopAtFirstViolation = false)
{
    private const int Cap = 2;
    private const ulong Epoch = 4; // the source runs under epoch 3 and exports epoch 4
    private static readonly WorkloadIdentity Workload = WorkloadIdentity.NewInstance(Fleet.WorkloadMeasurement);

    private enum K { State, Ready, Commit, Ack, Abort }

    private sealed class Attempt
    {
        public required SourceCommitProtocol Src;
        public DestinationCommitProtocol? Dst;
        public List<K> ToDst = [], ToSrc = [];
        public bool DstCrashed, EarlyRun;

        public Attempt Clone() => new() { Src = Src.Clone(), Dst = Dst?.Clone(), ToDst = [.. ToDst], ToSrc = [.. ToSrc], DstCrashed = DstCrashed, EarlyRun = EarlyRun };
        public bool DstRuns => Dst is not null && (Dst.GuestMayRun || EarlyRun);
    }

    private sealed class World
    {
        public List<Attempt> Attempts = [];
        public MemoryEpochStore Store = new();
        public int Drops, Dups;
        public bool SrcCrashed, DstCrashUsed, DstEverRan;

        public World Clone() => new()
        {
            Attempts = Attempts.Select(a => a.Clone()).ToList(),
            Store = Store.Clone(),
            Drops = Drops,
            Dups = Dups,
            SrcCrashed = SrcCrashed,
            DstCrashUsed = DstCrashUsed,
            DstEverRan = DstEverRan,
        };

        public Attempt Current => Attempts[^1];
        /// <summary>The source process runs the guest if it is alive and its current attempt allows it.</summary>
        public bool SrcRuns => !SrcCrashed && Current.Src.GuestMayRun;
        public int DstRunning => Attempts.Count(a => a.DstRuns);

        public string Key()
        {
            var parts = Attempts.Select(a =>
            {
                a.ToDst.Sort();
                a.ToSrc.Sort();
                return $"{a.Src.Phase}/{a.Src.Acknowledged}|{a.Dst?.Phase}/{a.Dst?.Epoch}/{a.EarlyRun}/{a.DstCrashed}|{string.Join(",", a.ToDst)}|{string.Join(",", a.ToSrc)}";
            });
            return $"{string.Join(" ; ", parts)} || {Store.Last}/{Store.Accepts}|{Drops}/{Dups}/{SrcCrashed}/{DstCrashUsed}/{DstEverRan}";
        }
    }

    public ExplorerReport Run()
    {
        var start = new World { Store = new MemoryEpochStore(storeInitial) };
        start.Attempts.Add(NewAttempt());
        var parent = new Dictionary<string, (string? From, string Action)> { [start.Key()] = (null, "start") };
        var worlds = new Dictionary<string, World> { [start.Key()] = start };
        var queue = new Queue<string>([start.Key()]);
        var violations = new List<string>();
        int ran = 0, lostBeforeRunning = 0;
        var lostOnlyAfterCommitCrash = true;
        var edges = new Dictionary<string, List<string>>(); // fault-free successors, for the liveness check

        while (queue.Count > 0)
        {
            var key = queue.Dequeue();
            var w = worlds[key];
            var v = Check(w);
            if (v is not null && violations.Count < 20) violations.Add(v + "\n" + Trace(parent, key));
            if (v is not null && stopAtFirstViolation) return new ExplorerReport(worlds.Count, violations, ran, lostBeforeRunning, lostOnlyAfterCommitCrash);
            if (w.DstRunning > 0) ran++;
            if (!w.SrcRuns && w.DstRunning == 0 && !w.SrcCrashed && Settled(w))
            {
                // Losing the copy because a destination crashed while running is a crash of the one copy, not the
                // protocol's doing; losing it between the commit and the destination's start is the known gap.
                if (!(w.Current.DstCrashed && w.Current.Src.Phase == SourcePhase.Committed)) lostOnlyAfterCommitCrash = false;
                if (!w.DstEverRan) lostBeforeRunning++;
            }
            var freeSuccessors = new List<string>();
            edges[key] = freeSuccessors;
            foreach (var (action, next, fault) in Successors(w))
            {
                var nk = next.Key();
                if (!fault) freeSuccessors.Add(nk);
                if (worlds.ContainsKey(nk)) continue;
                worlds[nk] = next;
                parent[nk] = (key, action);
                queue.Enqueue(nk);
            }
        }

        // Liveness: from every state without a crash, a fault-free path reaches a settled state where exactly one
        // copy runs (backward reachability over fault-free edges).
        var good = worlds.Where(kv => Settled(kv.Value) && (kv.Value.SrcRuns ? 1 : 0) + kv.Value.DstRunning == 1).Select(kv => kv.Key);
        var reverse = new Dictionary<string, List<string>>();
        foreach (var (from, tos) in edges)
        {
            foreach (var to in tos)
            {
                if (!reverse.TryGetValue(to, out var l)) reverse[to] = l = [];
                l.Add(from);
            }
        }
        var canSettle = new HashSet<string>(good);
        var work = new Queue<string>(canSettle);
        while (work.Count > 0)
        {
            if (!reverse.TryGetValue(work.Dequeue(), out var preds)) continue;
            foreach (var p in preds)
            {
                if (canSettle.Add(p)) work.Enqueue(p);
            }
        }
        foreach (var (k, w) in worlds)
        {
            if (!w.SrcCrashed && !w.DstCrashUsed && !canSettle.Contains(k) && violations.Count < 20)
            {
                violations.Add("no fault-free way to exactly one running copy (deadlock or lost workload)\n" + Trace(parent, k));
            }
        }
        return new ExplorerReport(worlds.Count, violations, ran, lostBeforeRunning, lostOnlyAfterCommitCrash);
    }

    private static Attempt NewAttempt() => new() { Src = new SourceCommitProtocol(Workload, Epoch - 1), Dst = new DestinationCommitProtocol(Workload) };

    /// <summary>Who runs can no longer change without a new fault or a new attempt.</summary>
    private static bool Settled(World w)
    {
        if (w.DstRunning > 0) return true;
        var a = w.Current;
        if (a.Src.Phase == SourcePhase.Aborted && (a.Dst is null || a.Dst.Phase == DestinationPhase.Discarded)) return true;
        if (a.Src.Phase == SourcePhase.Committed && a.DstCrashed) return true;
        return false;
    }

    private string? Check(World w)
    {
        var copies = (w.SrcRuns ? 1 : 0) + w.DstRunning;
        if (copies > 1) return $"two copies run ({(w.SrcRuns ? "the source and " : "")}{w.DstRunning} destination(s))";
        if (w.DstEverRan && w.SrcRuns) return "the source runs again after a destination ran (fork across time)";
        if (w.Store.Accepts > 1) return "the host accepted an epoch twice";
        if (w.DstRunning > 0 && storeInitial.HasValue && storeInitial.Value >= Epoch) return "a stale epoch runs (rollback)";
        return null;
    }

    private IEnumerable<(string Action, World Next, bool Fault)> Successors(World w)
    {
        for (var ai = 0; ai < w.Attempts.Count; ai++)
        {
            var a = w.Attempts[ai];
            var i0 = ai;
            var tag = w.Attempts.Count > 1 ? $"#{ai + 1} " : "";
            Attempt At(World n) => n.Attempts[i0];

            // Source steps (a crashed source process takes none).
            if (!w.SrcCrashed)
            {
                if (a.Src.Phase == SourcePhase.Running)
                {
                    yield return ($"{tag}source begins export", Step(w, n => { At(n).Src.BeginExport(); Send(At(n).ToDst, K.State); }), false);
                }
                if (a.Src.Phase == SourcePhase.Exporting)
                {
                    yield return ($"{tag}source times out and aborts", Step(w, n => { if (At(n).Src.TryAbort(out _)) Send(At(n).ToDst, K.Abort); }), false);
                }
                if (a.Src.Phase == SourcePhase.Committed && mutant == Mutant.SourceResumesOnTimeoutAfterCommit && ai == w.Attempts.Count - 1)
                {
                    yield return ($"{tag}MUTANT source resumes after commit", Step(w, n => At(n).Src = new SourceCommitProtocol(Workload, Epoch - 1)), false);
                }
                if (a.Src.Phase == SourcePhase.Aborted && ai == w.Attempts.Count - 1 && w.Attempts.Count < attempts)
                {
                    yield return ("source tries again", Step(w, n => n.Attempts.Add(NewAttempt())), false);
                }
                if (a.Src.Retransmit() is { } again)
                {
                    var k = again.Kind == CommitMessageKind.Commit ? K.Commit : K.Abort;
                    if (a.ToDst.Count(x => x == k) < Cap) yield return ($"{tag}source resends {k}", Step(w, n => Send(At(n).ToDst, k)), false);
                }
                foreach (var m in a.ToSrc.Distinct().ToList())
                {
                    yield return ($"{tag}source receives {m}", Step(w, n =>
                    {
                        At(n).ToSrc.Remove(m);
                        try
                        {
                            if (m == K.Ready)
                            {
                                var reply = At(n).Src.OnReady(new CommitMessage(CommitMessageKind.Ready, Epoch));
                                Send(At(n).ToDst, reply.Kind == CommitMessageKind.Commit ? K.Commit : K.Abort);
                            }
                            else if (m == K.Ack)
                            {
                                At(n).Src.OnAck(new CommitMessage(CommitMessageKind.Ack, Epoch));
                            }
                        }
                        catch (CommitProtocolException)
                        {
                            // refused: dropped, as the integration logs and drops it
                        }
                    }), false);
                }
            }

            // Destination steps.
            if (a.Dst is not null)
            {
                if (a.Dst.Retransmit() is not null && a.ToSrc.Count(x => x == K.Ready) < Cap)
                {
                    yield return ($"{tag}destination resends Ready", Step(w, n => Send(At(n).ToSrc, K.Ready)), false);
                }
                foreach (var m in a.ToDst.Distinct().ToList())
                {
                    yield return ($"{tag}destination receives {m}", Step(w, n =>
                    {
                        var at = At(n);
                        at.ToDst.Remove(m);
                        var store = mutant == Mutant.DestinationIgnoresEpochStore ? new MemoryEpochStore() : n.Store;
                        try
                        {
                            switch (m)
                            {
                                case K.State:
                                    at.Dst!.StateComplete(Epoch, store);
                                    Send(at.ToSrc, K.Ready);
                                    if (mutant == Mutant.DestinationRunsWhenReady) at.EarlyRun = true;
                                    break;
                                case K.Commit:
                                    at.Dst!.OnCommit(new CommitMessage(CommitMessageKind.Commit, Epoch), store);
                                    if (mutant == Mutant.DestinationIgnoresEpochStore) n.Store.TryAccept(Workload, Epoch);
                                    Send(at.ToSrc, K.Ack);
                                    break;
                                case K.Abort:
                                    at.Dst!.OnAbort(new CommitMessage(CommitMessageKind.Abort, Epoch));
                                    if (at.Dst.Phase == DestinationPhase.Discarded) at.EarlyRun = false;
                                    break;
                            }
                        }
                        catch (CommitProtocolException)
                        {
                            // refused: dropped
                        }
                    }), false);
                }
                if (!w.DstCrashUsed)
                {
                    yield return ($"{tag}destination crashes", Step(w, n => { var at = At(n); at.Dst = null; at.DstCrashed = true; at.EarlyRun = false; n.DstCrashUsed = true; }), true);
                }
            }

            // Network faults.
            foreach (var toDst in new[] { true, false })
            {
                var list = toDst ? a.ToDst : a.ToSrc;
                var where = toDst ? "to the destination" : "to the source";
                foreach (var m in list.Distinct().ToList())
                {
                    if (w.Drops < maxDrops) yield return ($"{tag}network drops {m} {where}", Step(w, n => { (toDst ? At(n).ToDst : At(n).ToSrc).Remove(m); n.Drops++; }), true);
                    if (w.Dups < maxDups && list.Count(x => x == m) < Cap) yield return ($"{tag}network duplicates {m} {where}", Step(w, n => { (toDst ? At(n).ToDst : At(n).ToSrc).Add(m); n.Dups++; }), true);
                }
            }
        }
        if (!w.SrcCrashed) yield return ("source crashes", Step(w, n => n.SrcCrashed = true), true);
    }

    private static void Send(List<K> channel, K message)
    {
        if (channel.Count(x => x == message) < Cap) channel.Add(message);
    }

    private static World Step(World w, Action<World> action)
    {
        var n = w.Clone();
        action(n);
        if (n.DstRunning > 0) n.DstEverRan = true;
        return n;
    }

    private static string Trace(Dictionary<string, (string? From, string Action)> parent, string key)
    {
        var steps = new List<string>();
        for (string? k = key; k is not null; k = parent[k].From) steps.Add(parent[k].Action);
        steps.Reverse();
        return "  trace: " + string.Join(" → ", steps);
    }
}
