using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Ferry.Enclave.Confidential.Tests")]
