// Baseline for `dotnet run -c Release --project bench/Ferry.Bench -- engine`: one export of bench/kernels'
// kernels.wasm under node's V8, called once to warm up (Liftoff, then TurboFan tier-up) and then REPS times.
// Usage: node kernels.mjs FILE FUNCTION ARG REPS
// Prints {"result": "...", "ms": [...], "cpu_ms": [...]}: result as a decimal string, wall and process CPU time per call.
import fs from 'node:fs';

const [file, fn, arg, reps] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(fs.readFileSync(file));
const f = instance.exports[fn];
let result = f(Number(arg));
const ms = [];
const cpuMs = [];
for (let r = 0; r < Number(reps); r++) {
  const c = process.cpuUsage();
  const t = performance.now();
  const again = f(Number(arg));
  ms.push(performance.now() - t);
  const used = process.cpuUsage(c);
  cpuMs.push((used.user + used.system) / 1000);
  if (String(again) !== String(result)) throw new Error(`${fn}(${arg}) returned ${again}, then ${result}`);
  result = again;
}
console.log(JSON.stringify({ result: String(result), ms, cpu_ms: cpuMs }));
