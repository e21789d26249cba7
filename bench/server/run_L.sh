#!/bin/bash
# Server call 1 (session 14): the bf16 stores' hash inputs in 32-bit lanes (b4: linalg::StochasticIndex, a
# Weyl induction and a fixed high half) against b3 (main 8ffc5f8: a 64-bit index per element), same run.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; lscpu | grep -E 'Model name|^CPU\(s\)|Thread|L1d|L2|L3|NUMA node0'; } > $OUT/env.txt
for b in b3 b4 b3 b4; do
  echo "== $b"
  timeout 80 .dev/$b/bench/tool_bf16_step --threads=1,2,4,8,16 --repeats=2 \
    --kinds=float,master_sr,param,master_m16,param_m16 2>&1 | tail -26
done > $OUT/bf16_ab.txt 2>&1
date -u >> $OUT/env.txt
# One more sample of the 1-2 thread cells that moved most between runs (issue 16's checked steps, issue
# 17's bf16 NS and Muon bf16 step), with b4.
timeout 230 python3 bench/compare_torch.py --build .dev/b4 --threads 2,1 --repeats 2 --step-repeats 2 \
  --step-kinds adamw,laprop,adamw_unchecked --bf16 --shapes 768x3072,1024x4096 > $OUT/torch_12.txt 2>&1
date -u >> $OUT/env.txt
