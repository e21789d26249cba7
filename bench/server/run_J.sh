#!/bin/bash
# Server call 1 (session 13): the elementwise steps after the sweep's build-time change (d4d60f5:
# no decay is keep = 1, one multiply more per element), same-run A/B against the code before it
# (b0 = d1482e2, b1 = this main); the elementwise cells against torch's fused AdamW; bf16 storage.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; grep -m1 'model name' /proc/cpuinfo; grep -m1 '^model' /proc/cpuinfo; nproc; uptime; } > $OUT/env.txt
for t in 1 2 4 16; do
  for b in b0 b1 b0 b1; do
    echo "== $b threads=$t"
    OMP_NUM_THREADS=$t timeout 60 .dev/$b/bench/bench_step --threads=$t --skip_memory \
      --benchmark_filter='^(fused|step/adam|step_unchecked/adam|step/adamw|step_unchecked/adamw)/' \
      --benchmark_repetitions=2 --benchmark_report_aggregates_only=false 2>&1 | grep -E '^(fused|step)' | grep -v -E '_(mean|median|stddev|cv)'
  done
done > $OUT/ab.txt 2>&1
date -u >> $OUT/env.txt
timeout 200 python3 bench/compare_torch.py --build .dev/b1 --threads 16,8,4,2,1 --repeats 2 --step-repeats 3 \
  --step-kinds adamw,adamw_unchecked,laprop --shapes 768x3072 > $OUT/steps.txt 2>&1
date -u >> $OUT/env.txt
timeout 120 .dev/b1/bench/tool_bf16_step --threads=1,2,4,8,16 --repeats=2 \
  --kinds=float,master,param,master_m16,param_m16 > $OUT/bf16_step.txt 2>&1
date -u >> $OUT/env.txt
