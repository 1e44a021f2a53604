using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using Ferry.Enclave.Confidential;

namespace Ferry.Cli.Commands;

/// <summary>
/// `ferry attest --state-dir DIR [--trust FILE] [--name NAME] [--json]`: this host's entry for the fleet trust file
/// (its software-TEE platform key, created in DIR on first use, as the agent's runtimes use it), a sample quote
/// signed with it, and whether the trust file accepts that quote.
/// </summary>
public static class AttestCommand
{
    public static Command Create()
    {
        var stateDir = new Option<string>("--state-dir") { Description = "The agent's state dir (its platform key is STATE-DIR/platform-key.pem, created on first use)", Required = true };
        var trust = new Option<string?>("--trust") { Description = "The fleet trust file to check the sample quote against (default STATE-DIR/trust.json)" };
        var name = new Option<string?>("--name") { Description = "The name of this host's entry (default: the machine's host name)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("attest", "Print this host's trust-file entry and a sample quote, and check the quote against the trust file") { stateDir, trust, name, json };
        command.SetAction(parse =>
        {
            var dir = Path.GetFullPath(parse.GetValue(stateDir)!);
            var trustFile = parse.GetValue(trust) is { Length: > 0 } t ? Path.GetFullPath(t) : Path.Combine(dir, "trust.json");
            var hostName = parse.GetValue(name) is { Length: > 0 } n ? n.Trim() : Environment.MachineName;
            SoftwareTeeBackend tee;
            try
            {
                tee = SoftwareTeeBackend.OpenOrCreate(dir);
            }
            catch (Exception e) when (e is ConfidentialException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"ferry attest: {e.Message}");
                return ExitCodes.Failure;
            }
            using (tee)
            {
                var entry = tee.TrustEntry(hostName);
                // A sample quote as a runtime would produce it in a handshake: a measurement, a fresh ephemeral key and nonce.
                var measurement = SHA256.HashData("ferry attest sample measurement"u8);
                var nonce = RandomNumberGenerator.GetBytes(Quote.NonceSize);
                using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
                var p = ephemeral.ExportParameters(false);
                byte[] point = [0x04, .. p.Q.X!, .. p.Q.Y!];
                var quote = tee.CreateQuote(measurement, point, nonce);
                string verdict;
                bool? accepted = null;
                if (!File.Exists(trustFile))
                {
                    verdict = $"no trust file at {trustFile}: add the entry above to the fleet trust file ({{\"format\": \"ferry-trust/1\", \"platforms\": [...]}}) and give it to every agent (--trust FILE)";
                }
                else
                {
                    try
                    {
                        var store = TrustStore.Load(trustFile);
                        var result = tee.Verify(quote, store, new AttestationPolicy { ExpectedMeasurement = measurement, ExpectedNonce = nonce });
                        accepted = result.Accepted;
                        verdict = result.Accepted ? $"accepted by {trustFile} (platform '{result.Platform?.Name}')" : $"refused by {trustFile}: {result.Reason}";
                    }
                    catch (ConfidentialException e)
                    {
                        accepted = false;
                        verdict = $"the trust file is not usable: {e.Message}";
                    }
                }
                if (parse.GetValue(json))
                {
                    using var stdout = Console.OpenStandardOutput();
                    using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
                    {
                        w.WriteStartObject();
                        w.WritePropertyName("entry");
                        using (var doc = JsonDocument.Parse(entry.ToJson())) doc.WriteTo(w);
                        w.WriteString("platformId", Convert.ToHexStringLower(tee.PlatformId));
                        w.WriteString("keyFile", tee.KeyPath);
                        w.WriteString("sampleQuote", Convert.ToBase64String(quote.Encode()));
                        w.WriteString("trustFile", trustFile);
                        if (accepted is { } a) w.WriteBoolean("accepted", a);
                        else w.WriteNull("accepted");
                        w.WriteString("verdict", verdict);
                        w.WriteEndObject();
                    }
                    Console.WriteLine();
                }
                else
                {
                    Console.WriteLine("# this host's entry for the fleet trust file (\"platforms\" array):");
                    Console.WriteLine(entry.ToJson());
                    Console.WriteLine($"# platform key: {tee.KeyPath}");
                    Console.WriteLine($"# sample quote ({quote.Encode().Length} bytes, valid until {quote.ExpiresAt:O}): {Convert.ToBase64String(quote.Encode())}");
                    Console.WriteLine($"# trust file: {verdict}");
                }
                return accepted == false ? ExitCodes.Failure : ExitCodes.Ok;
            }
        });
        return command;
    }
}
