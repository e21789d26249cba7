#!/bin/bash
# Server call 2 (session 13): the bf16 loops at 32 lanes (b3: full 512-bit vectors where a loop moves
# bf16) against b1 (this morning's main, simdlen(16): pairs of 256-bit vectors there), same run;
# then the bf16 Newton-Schulz and Muon's bf16 step against torch with b3.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; } > $OUT/env.txt
for b in b1 b3 b1 b3; do
  echo "== $b"
  timeout 70 .dev/$b/bench/tool_bf16_step --threads=1,2,4,8,16 --repeats=2 \
    --kinds=float,master,master_copy,param,master_m16,param_m16 2>&1 | tail -31
done > $OUT/bf16_ab.txt 2>&1
date -u >> $OUT/env.txt
for b in b1 b3 b1 b3; do
  echo "== $b"
  timeout 40 .dev/$b/bench/bench_bf16_ns --threads=1,16 --benchmark_filter='^ns/(768x3072|1024x4096)/bf16/' 2>&1 | grep -E '^ns/'
done > $OUT/ns_ab.txt 2>&1
date -u >> $OUT/env.txt
timeout 180 python3 bench/compare_torch.py --build .dev/b3 --threads 16,8,4,2,1 --repeats 2 --step-repeats 1 \
  --step-kinds '' --bf16 --shapes 768x3072,1024x4096 > $OUT/bf16_torch.txt 2>&1
date -u >> $OUT/env.txt
