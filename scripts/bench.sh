#!/usr/bin/env bash
# make bench / make bench-quick: builds with -O2 into build-bench/ and runs the benchmarks
# that exist so far, pinned to one core, printing name=value lines. Today: the crypto core
# (bench/crypto_bench.c). The relay, drain and idle-connection comparisons against
# Mosquitto and a bare relay arrive with the benchmark issue and extend this script.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
scripts/deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-bench --target crypto_bench -j "$(nproc)" >/dev/null
seconds=1
[ "$mode" = full ] && seconds=5
echo "# crypto core, ${seconds} CPU-second(s) per measurement, pinned to CPU 0"
if command -v taskset >/dev/null; then
  taskset -c 0 build-bench/bench/crypto_bench "$seconds"
else
  build-bench/bench/crypto_bench "$seconds"
fi
