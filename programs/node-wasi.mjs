// Runs a WASI command under node's WASI (node:wasi, preview1) the way `ferry run --dir . MODULE ARGS...` does:
// argv[0] is the module's file name, the current directory is preopened as ".", the exit status is the guest's.
// Usage: node programs/node-wasi.mjs MODULE.wasm [args...]   (stdio passes through)
import { WASI } from 'node:wasi';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const [, , wasmPath, ...args] = process.argv;
if (!wasmPath) {
  console.error('usage: node node-wasi.mjs MODULE.wasm [args...]');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: [basename(wasmPath), ...args],
  env: {},
  preopens: { '.': '.' },
  returnOnExit: true,
});
const t0 = process.hrtime.bigint();
const module = await WebAssembly.compile(readFileSync(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const t1 = process.hrtime.bigint();
if (process.env.FERRY_BENCH_STARTUP) console.error(`startup_ms=${Number(t1 - t0) / 1e6}`);
process.exitCode = wasi.start(instance);
