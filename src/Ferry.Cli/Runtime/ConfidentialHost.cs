using Ferry.Agent.Api;
using Ferry.Agent.Workloads;
using Ferry.Enclave.Confidential;
using Ferry.Enclave.Migration;
using Ferry.Migration.Protocol;

namespace Ferry.Cli.Runtime;

/// <summary>A confidential workload cannot be run or received here (no usable platform key, trust file or epoch store).</summary>
internal sealed class ConfidentialSetupException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The trusted runtime's view of its host for confidential workloads: the software TEE backend (platform key in the
/// agent's state dir), the fleet trust file the agent was given, and the host's epoch store. The agent passes the
/// locations in the runtime's environment (<see cref="RuntimeProcesses.StateDirVariable"/>,
/// <see cref="RuntimeProcesses.TrustFileVariable"/>); without them the state dir is the one holding the workload's
/// directory and the trust file is STATE/trust.json.
/// </summary>
internal sealed class ConfidentialHost : IDisposable
{
    private ConfidentialHost(SoftwareTeeBackend tee, string stateDir, string trustFile, string agentName)
    {
        Tee = tee;
        StateDir = stateDir;
        TrustFile = trustFile;
        AgentName = agentName;
        Epochs = new EpochStore(tee, stateDir);
    }

    public SoftwareTeeBackend Tee { get; }
    public string StateDir { get; }
    public string TrustFile { get; }
    public string AgentName { get; }
    public EpochStore Epochs { get; }

    public static ConfidentialHost Open(WorkloadDirectory dir)
    {
        var stateDir = Environment.GetEnvironmentVariable(RuntimeProcesses.StateDirVariable);
        if (string.IsNullOrEmpty(stateDir)) stateDir = Path.GetDirectoryName(Path.GetDirectoryName(dir.Path))!;
        var trust = Environment.GetEnvironmentVariable(RuntimeProcesses.TrustFileVariable);
        if (string.IsNullOrEmpty(trust)) trust = Path.Combine(stateDir, "trust.json");
        var name = Environment.GetEnvironmentVariable(RuntimeProcesses.AgentNameVariable) ?? "this host";
        try
        {
            return new ConfidentialHost(SoftwareTeeBackend.OpenOrCreate(stateDir), stateDir, trust, name);
        }
        catch (ConfidentialException e)
        {
            throw new ConfidentialSetupException($"confidential workloads cannot run on {name}: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfidentialSetupException($"confidential workloads cannot run on {name}: {e.Message}", e);
        }
    }

    /// <summary>A host at explicit locations (the migration warm-up's throwaway platform).</summary>
    public static ConfidentialHost At(string stateDir, string trustFile, string name) =>
        new(SoftwareTeeBackend.OpenOrCreate(stateDir), stateDir, trustFile, name);

    /// <summary>The fleet trust file, read afresh (an operator may have added hosts since the last migration).</summary>
    public TrustStore LoadTrust()
    {
        if (!File.Exists(TrustFile))
        {
            throw new ConfidentialSetupException(
                $"no trust file at {TrustFile} on {AgentName}: collect every host's `ferry attest --state-dir DIR` entry into it (or start the agent with --trust FILE)");
        }
        try
        {
            return TrustStore.Load(TrustFile);
        }
        catch (ConfidentialException e)
        {
            throw new ConfidentialSetupException($"the trust file of {AgentName} is not usable: {e.Message}", e);
        }
    }

    /// <summary>
    /// The measurement of a workload as its runtime launches it: module bytes and what the guest observes (argv with
    /// the module name as argv[0], the environment in order, the memory limit, the _start entry, confidential).
    /// </summary>
    public static byte[] Measure(ReadOnlySpan<byte> module, WorkloadSpec spec) =>
        Measurement.Compute(module, new LaunchConfig
        {
            Args = [spec.ModuleName, .. spec.Args],
            Env = [.. spec.Env.Select(Pair)],
            MaxMemoryBytes = spec.MemoryLimitBytes,
            Confidential = true,
        });

    private static KeyValuePair<string, string> Pair(string entry)
    {
        var eq = entry.IndexOf('=', StringComparison.Ordinal);
        return eq < 0 ? new(entry, "") : new(entry[..eq], entry[(eq + 1)..]);
    }

    /// <summary>Source half of the attestation handshake; keys <paramref name="protector"/> once both sides are attested.</summary>
    public async Task HandshakeAsSourceAsync(byte[] measurement, Guid migrationId, IHandshakeChannel channel, SessionRecordProtector protector, Action<string> log, CancellationToken ct)
    {
        var trust = LoadTrust();
        using var session = MigrationSession.CreateSource(Tee, trust, measurement, migrationId);
        try
        {
            await channel.SendAsync(session.Start(), ct).ConfigureAwait(false);
            var quote = await channel.ReceiveAsync(ct).ConfigureAwait(false);
            await channel.SendAsync(session.ReceiveDestinationQuote(quote), ct).ConfigureAwait(false);
            session.ReceiveConfirmation(await channel.ReceiveAsync(ct).ConfigureAwait(false));
        }
        catch (ConfidentialException e)
        {
            throw new ConfidentialSetupException($"the destination runtime was not accepted: {e.Message}", e);
        }
        protector.Attach(session);
        log($"attested destination runtime on platform '{session.PeerPlatform?.Name}' (measurement {Measurement.Short(measurement)}); records are sealed");
    }

    /// <summary>Destination half of the attestation handshake.</summary>
    public async Task HandshakeAsDestinationAsync(byte[] measurement, Guid migrationId, IHandshakeChannel channel, SessionRecordProtector protector, Action<string> log, CancellationToken ct)
    {
        var trust = LoadTrust();
        using var session = MigrationSession.CreateDestination(Tee, trust, measurement, migrationId);
        try
        {
            var quote = session.Respond(await channel.ReceiveAsync(ct).ConfigureAwait(false));
            await channel.SendAsync(quote, ct).ConfigureAwait(false);
            var confirmation = session.ReceiveSourceQuote(await channel.ReceiveAsync(ct).ConfigureAwait(false));
            await channel.SendAsync(confirmation, ct).ConfigureAwait(false);
        }
        catch (ConfidentialException e)
        {
            throw new ConfidentialSetupException($"the destination runtime on {AgentName} did not accept the source: {e.Message}", e);
        }
        protector.Attach(session);
        log($"attested source runtime on platform '{session.PeerPlatform?.Name}' (measurement {Measurement.Short(measurement)}); records are sealed");
    }

    public void Dispose() => Tee.Dispose();
}

/// <summary>
/// The destination's anti-rollback check: the state must carry this workload's identity (same measurement) and an
/// epoch newer than any this host accepted for it; the epoch is recorded at the commit.
/// </summary>
internal sealed class EpochAdmission(IEpochStore store, byte[] measurement) : IStateAdmission, IDisposable
{
    // The epoch record is sealed, written and flushed in the background from the admission on, while the destination
    // builds the guest and the Ready/Commit exchange crosses the network; the commit then only compares and renames
    // it. Done at the commit, the fsync was the one systematic cost of a sealed migration's downtime (commit 2.2 ms
    // against 0.6 ms plain, docs/benchmarks.md).
    private Task<IStagedEpoch>? staging;
    // Staged from the source's epoch intent, before the freeze: the admission takes it over if the state matches.
    private Anticipation? anticipated;

    /// <summary>The intent's identity as it was encoded (compared byte for byte at the admission), decoded and checked.</summary>
    private sealed record Anticipation(byte[] Encoded, WorkloadIdentity Identity, ulong Epoch, Task<IStagedEpoch> Staging);

    public WorkloadIdentity? Identity { get; private set; }
    public ulong Epoch { get; private set; }

    public void Anticipate(ReadOnlySpan<byte> identity, ulong epoch)
    {
        if (identity.Length != WorkloadIdentity.EncodedSize || epoch == 0) return;
        WorkloadIdentity id;
        try
        {
            id = WorkloadIdentity.Decode(identity);
        }
        catch (Exception)
        {
            return; // Admit refuses the state with the reason
        }
        if (!id.Measurement.AsSpan().SequenceEqual(measurement)) return;
        Release(anticipated?.Staging);
        anticipated = new Anticipation(identity.ToArray(), id, epoch, Task.Run(() => store.Stage(id, epoch)));
    }

    public void Admit(MigrationRecords.StateRecord state)
    {
        if (state.Identity.Length != WorkloadIdentity.EncodedSize) throw new MigrationIntegrityException("the confidential state carries no workload identity");
        var epoch = state.Epoch;
        Release(staging);
        WorkloadIdentity identity;
        if (anticipated is { } a && a.Epoch == epoch && state.Identity.AsSpan().SequenceEqual(a.Encoded))
        {
            // The identity the intent announced, byte for byte: decoded (a SHA-256) and checked against the
            // measurement then, so not again inside the downtime (first runs of that code cost 0.1-0.3 ms here).
            identity = a.Identity;
            staging = a.Staging; // written while the pages travelled
        }
        else
        {
            identity = WorkloadIdentity.Decode(state.Identity);
            if (!identity.Measurement.AsSpan().SequenceEqual(measurement)) throw new MigrationIntegrityException("the state belongs to a workload of another measurement");
            if (epoch == 0) throw new MigrationIntegrityException("the confidential state carries no epoch");
            // Disposed once written, which frees the identity's lock for the new staging. Only a source whose intent
            // did not match its state gets here: the staging's write then falls inside its downtime.
            Release(anticipated?.Staging);
            staging = Task.FromResult(store.Stage(identity, epoch));
        }
        anticipated = null;
        // The usual case: staged long ago, holding the identity's lock since it read the last epoch, so that read
        // is still true and nothing is read here. Waiting for it otherwise means that a staging that fails (the
        // lock held by a stuck earlier attempt, a full disk) refuses the state before Ready, while the source can
        // still resume on its own, rather than at the commit, after which only a discard proof lets it.
        var last = staging.GetAwaiter().GetResult().LastAccepted;
        if (last is { } l && l >= epoch)
        {
            throw new MigrationIntegrityException($"stale epoch: this host already accepted epoch {l} of workload {identity}, the state carries {epoch} (rollback or fork refused)");
        }
        Identity = identity;
        Epoch = epoch;
    }

    public void Commit()
    {
        var identity = Identity ?? throw new InvalidOperationException("no state was admitted");
        var staged = staging!.GetAwaiter().GetResult(); // completed at the admission
        if (!staged.Commit()) throw new MigrationIntegrityException($"stale epoch {Epoch} of workload {identity} at commit (rollback or fork refused)");
    }

    /// <summary>An admission that never committed accepts nothing: its staged record is deleted once written.</summary>
    public void Dispose()
    {
        Release(staging);
        Release(anticipated?.Staging);
        staging = null;
        anticipated = null;
    }

    /// <summary>A staged record that will not be committed is deleted once written.</summary>
    private static void Release(Task<IStagedEpoch>? pending) =>
        _ = pending?.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) t.Result.Dispose();
        }, TaskScheduler.Default);
}
