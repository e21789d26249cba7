#!/bin/bash
# Server call 3 (session 14): does thread placement move the cells that sit near 1.0 at 8-16 threads
# (bf16 NS; float NS at 2048x2048)? b4 under libgomp's defaults, OMP_PROC_BIND=close with
# OMP_PLACES=cores, and OMP_WAIT_POLICY=active, alternated twice.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; } > $OUT/env.txt
for round in 1 2; do
  for env in "X=1" "OMP_PROC_BIND=close OMP_PLACES=cores" "OMP_WAIT_POLICY=active"; do
    echo "== round $round: $env"
    env $env timeout 45 .dev/b4/bench/bench_bf16_ns --threads=8,16 \
      --benchmark_filter='^ns/(768x3072|1024x4096)/bf16/' 2>&1 | grep -E '^ns/'
    env $env timeout 30 .dev/b4/bench/bench_newton_schulz --threads=8,16 \
      --benchmark_filter='^ns/2048x2048/ours/' 2>&1 | grep -E '^ns/'
  done
done > $OUT/placement.txt 2>&1
date -u >> $OUT/env.txt
