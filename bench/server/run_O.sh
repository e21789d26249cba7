#!/bin/bash
# Server call 4 (session 14): the bf16 Newton-Schulz on one team of threads for all its steps (b5) against
# a fork and join per job loop (b4), same run; then b5 against torch at 16 and 8 threads.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; } > $OUT/env.txt
for b in b4 b5 b4 b5; do
  echo "== $b"
  timeout 60 .dev/$b/bench/bench_bf16_ns --threads=1,2,4,8,16 \
    --benchmark_filter='^ns/(768x3072|1024x4096|2048x2048)/bf16/' 2>&1 | grep -E '^ns/'
done > $OUT/team_ab.txt 2>&1
date -u >> $OUT/env.txt
timeout 200 python3 bench/compare_torch.py --build .dev/b5 --threads 16,8 --repeats 2 --step-repeats 2 \
  --step-kinds '' --bf16 --shapes 768x3072,1024x4096,2048x2048 > $OUT/torch_b5.txt 2>&1
date -u >> $OUT/env.txt
