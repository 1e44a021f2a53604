#!/usr/bin/env bash
# Measure every workload the way docs/workloads.md reports it (run after workloads/build):
#   1. native at --mem MEM for SECS seconds with --measure-dirty: ops/s and distinct 4 KiB pages
#      written per second (userfaultfd + PAGEMAP_SCAN; needs root and Linux >= 6.7);
#   2. resident set (max RSS) and init time of that run;
#   3. native vs node-WASI wall time for the same --ops (sized so native runs ~RUN seconds).
# Usage: workloads/tools/measure.sh [MEM] [SECS] [RUN]   (defaults 256M 5 2)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mem=${1:-256M}; secs=${2:-5}; run=${3:-2}
[ -x /usr/bin/time ] || { echo "measure.sh: needs GNU time at /usr/bin/time (Debian package 'time')" >&2; exit 1; }
[ -x "$here/out/native/microbench" ] || { echo "measure.sh: run workloads/build first" >&2; exit 1; }
programs=(btree hashjoin bfs pagerank kvstore xsbench svm blockchain microbench)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

printf '| program | init s | max RSS MiB | ops/s (native) | dirty pages/s (mean) | dirty MiB/s | peak pages/s | ops for timing | native s | node s | node/native |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for p in "${programs[@]}"; do
  extra=()
  [ "$p" = microbench ] && extra=(--rate 0)
  /usr/bin/time -f '%M' -o "$tmp/rss" "$here/out/native/$p" --mem "$mem" --seconds "$secs" --progress 0 --measure-dirty "${extra[@]}" \
    >"$tmp/out" 2>"$tmp/err"
  init=$(grep -o 'init done in [0-9.]*' "$tmp/err" | awk '{print $4}')
  rss=$(awk '{printf "%.0f", $1/1024}' "$tmp/rss")
  opsps=$(grep -o 'ops in [0-9.]*s ([0-9]* ops/s)' "$tmp/err" | grep -o '([0-9]*' | tr -d '(')
  mean=$(grep -o 'mean [0-9]* pages/s ([0-9.]* MiB/s), peak [0-9]*' "$tmp/err" || true)
  mp=$(echo "$mean" | awk '{print $2}'); mmib=$(echo "$mean" | grep -o '([0-9.]*' | tr -d '('); peak=$(echo "$mean" | awk '{print $NF}')
  # ops that take ~RUN s natively, from the measured rate (measurement overhead makes this a bit low)
  n=$(( opsps * run ))
  /usr/bin/time -f '%e' -o "$tmp/tn" "$here/out/native/$p" --mem "$mem" --ops "$n" --progress 0 >"$tmp/n.out" 2>/dev/null
  /usr/bin/time -f '%e' -o "$tmp/tw" node "$here/tools/run-wasi.mjs" "$here/out/wasm32/$p.wasm" --mem "$mem" --ops "$n" --progress 0 \
    >"$tmp/w.out" 2>/dev/null
  cmp -s "$tmp/n.out" "$tmp/w.out" || { echo "MISMATCH between native and node for $p" >&2; exit 1; }
  tn=$(cat "$tmp/tn"); tw=$(cat "$tmp/tw")
  ratio=$(awk -v a="$tw" -v b="$tn" 'BEGIN{printf "%.1f", a/b}')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$init" "$rss" "$opsps" "$mp" "$mmib" "$peak" "$n" "$tn" "$tw" "$ratio"
done
