#!/bin/bash
# Kept as run (session 9): the binaries and the carried dependencies lived in the ignored .dev/ (bench/README.md).
# Server call 2 (session 9): elementwise steps with the prefetching sweep and check (b2) against the
# previous code (b1) and torch, all thread counts; Muon/Mango and NS 4096 at 1 thread.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
date -u > $OUT/env.txt
for t in 1 2 8 16; do
  for b in b1 b2 b1 b2; do
    echo "== $b threads=$t"
    .dev/$b/bench/bench_step --threads=$t --skip_memory --benchmark_filter='^(step|step_unchecked)/adamw/' --benchmark_repetitions=2 --benchmark_report_aggregates_only=true 2>&1 | grep -E "_min "
  done
done > $OUT/ab.txt 2>&1
date -u >> $OUT/env.txt
timeout 150 python3 bench/compare_torch.py --build .dev/b2 --threads 16,8,4,2,1 --repeats 2 --step-repeats 3 \
  --step-kinds adamw,adamw_unchecked,laprop --shapes 768x3072 > $OUT/steps.txt 2>&1
date -u >> $OUT/env.txt
timeout 150 python3 bench/compare_torch.py --build .dev/b2 --threads 1 --repeats 1 --step-repeats 1 \
  --step-kinds muon,mango --shapes 768x3072 > $OUT/steps1.txt 2>&1
date -u >> $OUT/env.txt
timeout 100 python3 bench/compare_torch.py --build .dev/b2 --threads 1 --repeats 1 --skip-steps --shapes 4096x4096 > $OUT/ns4096.txt 2>&1
date -u >> $OUT/env.txt
