#!/bin/bash
# Server call 1 (session 10): transparent huge pages for the sweep and the check (microbenchmark);
# the bf16-moment sweep with prefetch (b1) against session 9's (b0); the elementwise steps against
# torch's fused AdamW after the streams() refactor (b1).
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; grep -m1 'model name' /proc/cpuinfo; grep -m1 '^model' /proc/cpuinfo; nproc
  cat /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag; } > $OUT/env.txt
timeout 100 .dev/b1/huge_pages 1 2 4 8 16 > $OUT/huge.txt 2>&1
date -u >> $OUT/env.txt
for t in 16 8 4 2 1; do
  for b in b0 b1 b0 b1; do
    echo "== $b threads=$t"
    timeout 60 .dev/$b/bench/tool_bf16_step --threads=$t --repeats=2 --kinds=float,master_m16,param_m16 2>&1 | tail -4
  done
done > $OUT/bf16ab.txt 2>&1
date -u >> $OUT/env.txt
timeout 180 python3 bench/compare_torch.py --build .dev/b1 --threads 16,8,4,2,1 --repeats 2 --step-repeats 3 \
  --step-kinds adamw,adamw_unchecked,laprop --shapes 768x3072 > $OUT/steps.txt 2>&1
date -u >> $OUT/env.txt
