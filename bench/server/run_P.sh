#!/bin/bash
# Server call 5 (session 14): the 2-thread cells of run O again (b4 / b5 alternated three times), then b5
# against torch at 4 and 2 threads.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; } > $OUT/env.txt
for b in b4 b5 b4 b5 b4 b5; do
  echo "== $b"
  timeout 30 .dev/$b/bench/bench_bf16_ns --threads=2,4 \
    --benchmark_filter='^ns/(768x3072|1024x4096|2048x2048)/bf16/' 2>&1 | grep -E '^ns/'
done > $OUT/team_ab2.txt 2>&1
date -u >> $OUT/env.txt
timeout 170 python3 bench/compare_torch.py --build .dev/b5 --threads 4,2 --repeats 2 --step-repeats 2 \
  --step-kinds '' --bf16 --shapes 768x3072,1024x4096 > $OUT/torch_b5_24.txt 2>&1
date -u >> $OUT/env.txt
