#!/bin/bash
# Server call 2 (session 14): every issue-16 and issue-17 cell at 4, 8 and 16 threads with b4 (main with the
# 32-bit hash inputs), both sides in one run; then 4096x4096 at 8 and 16.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
{ date -u; uptime; } > $OUT/env.txt
timeout 390 python3 bench/compare_torch.py --build .dev/b4 --threads 16,8,4 --repeats 2 --step-repeats 2 \
  --step-kinds adamw,laprop,adamw_unchecked,muon,mango --bf16 --shapes 768x3072,1024x4096,2048x2048 > $OUT/torch_4_16.txt 2>&1
date -u >> $OUT/env.txt
timeout 170 python3 bench/compare_torch.py --build .dev/b4 --threads 16,8 --repeats 2 --skip-steps --bf16 \
  --shapes 4096x4096 > $OUT/torch_4096.txt 2>&1
date -u >> $OUT/env.txt
