// Run the freestanding wasm64 microbenchmark under node by providing the `ferry` host ABI that
// docs/workloads.md defines (pointers and lengths are i64, so they arrive here as BigInt).
// node 20 needs --experimental-wasm-memory64 and, like V8 generally, caps a memory64 memory at
// 4 GiB, so this harness checks the module and small sizes; footprints above 4 GiB need Ferry.
//   node --experimental-wasm-memory64 workloads/tools/run-wasm64.mjs microbench64.wasm [ARGS...]
import { readFileSync, writeSync } from 'node:fs';
import process from 'node:process';

const [file, ...rest] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node --experimental-wasm-memory64 run-wasm64.mjs MODULE.wasm [ARGS...]\n');
  process.exit(2);
}
const args = [file.split('/').pop().replace(/\.wasm$/, ''), ...rest].map((a) => Buffer.from(a, 'utf8'));

class Exit {
  constructor(code) { this.code = code; }
}
let memory;
const bytes = (ptr, len) => new Uint8Array(memory.buffer, Number(ptr), Number(len));
// A blocking sleep: Atomics.wait on a private buffer is the only synchronous sleep node has.
const sleeper = new Int32Array(new SharedArrayBuffer(4));

const ferry = {
  arg_count: () => args.length,
  arg_get: (index, buf, bufLen) => {
    if (index < 0 || index >= args.length) return -1n;
    const a = args[index];
    bytes(buf, Math.min(a.length, Number(bufLen))).set(a.subarray(0, Number(bufLen)));
    return BigInt(a.length);
  },
  write: (fd, ptr, len) => {
    if (fd !== 1 && fd !== 2) return -1n;
    return BigInt(writeSync(fd, bytes(ptr, len)));
  },
  clock_ns: () => process.hrtime.bigint(),
  sleep_ns: (ns) => { Atomics.wait(sleeper, 0, 0, Number(ns) / 1e6); },
  exit: (code) => { throw new Exit(code); },
};

const { instance } = await WebAssembly.instantiate(readFileSync(file), { ferry });
memory = instance.exports.memory;
try {
  instance.exports._start();
  process.exitCode = 0;
} catch (e) {
  if (!(e instanceof Exit)) throw e;
  process.exitCode = e.code;
}
