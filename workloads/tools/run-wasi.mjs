// Run a wasm32-wasi workload under node's WASI preview1, as the reference the Ferry engine's
// output is compared against: node workloads/tools/run-wasi.mjs PROG.wasm [ARGS...]
// stdout/stderr are the process's own; the exit status is the module's exit code.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node run-wasi.mjs PROG.wasm [ARGS...]\n');
  process.exit(2);
}
const name = file.split('/').pop().replace(/\.wasm$/, '');
// No preopens and an empty environment: the workloads touch no files, and anything the host
// passes in could make runs differ.
const wasi = new WASI({ version: 'preview1', args: [name, ...args], env: {}, returnOnExit: true });
const imports = wasi.getImportObject();
// Call every WASI function through a plain JS wrapper. node 20 binds some of them as V8 "fast API"
// calls, and on this machine a module that has grown its memory then crashes node with SIGSEGV
// inside wasi.start() (seen with a 64 MiB calloc followed by clock_gettime or printf; never with
// the wrappers). The wrappers cost a little per call and no workload makes many calls.
for (const ns of Object.keys(imports)) {
  const table = imports[ns];
  for (const name of Object.keys(table)) {
    const fn = table[name];
    if (typeof fn === 'function') table[name] = (...a) => fn(...a);
  }
}
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, imports);
const code = wasi.start(instance);
process.exitCode = code;
