// Baseline for `dotnet run -c Release --project bench/Ferry.Bench -- engine`: how long V8 takes for
// `new WebAssembly.Module(bytes)` on the same files, best of REPS. Run as a subprocess by the bench, once per V8
// configuration (node 20 compiles lazily by default: the call decodes and validates, and each function is
// compiled by Liftoff on its first call; --no-wasm-lazy-compilation compiles every function up front).
// Usage: node --expose-gc compile.mjs REPS FILE...   Prints one JSON line per file: {"file", "bytes", "ms": [...]}.
import fs from 'node:fs';

const [reps, ...files] = process.argv.slice(2);

// V8 reuses a compiled module when the same bytes are compiled again while the first one lives; a custom section
// that differs per repetition (ignored by compilation) makes every repetition a real compile.
function withMarker(bytes, rep) {
  const name = new TextEncoder().encode(`ferry-bench-${rep}`);
  const out = new Uint8Array(bytes.length + 3 + name.length);
  out.set(bytes, 0);
  // Custom section (id 0) of size 1 + name length: the name's length byte and the name (both < 128 bytes).
  out.set([0, name.length + 1, name.length], bytes.length);
  out.set(name, bytes.length + 3);
  return out;
}

for (const file of files) {
  const bytes = fs.readFileSync(file);
  const ms = [];
  for (let r = 0; r < Number(reps); r++) {
    const input = withMarker(bytes, r);
    if (globalThis.gc) globalThis.gc();
    const t = performance.now();
    new WebAssembly.Module(input);
    ms.push(performance.now() - t);
  }
  console.log(JSON.stringify({ file, bytes: bytes.length, ms }));
}
