#!/bin/bash
# Kept as run (session 9): the binaries and the carried dependencies lived in the ignored .dev/ (bench/README.md).
# Server call 3 (session 9, final main): bf16 storage/moments bytes and time; Muon and Mango steps
# (oneDNN f32 NS with tall matrices on a dense transposed copy) against torch.optim.Muon, float NS.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
export LD_LIBRARY_PATH=$PWD/$D/lib
date -u > $OUT/env.txt
timeout 90 .dev/b3/bench/tool_bf16_step --threads=1,2,4,8,16 --repeats=3 --kinds=float,master,param,master_m16,param_m16 > $OUT/bf16step.txt 2>&1
date -u >> $OUT/env.txt
timeout 330 python3 bench/compare_torch.py --build .dev/b3 --threads 16,8,4,2,1 --repeats 1 --step-repeats 1 \
  --step-kinds muon,mango --shapes 768x3072 > $OUT/muon.txt 2>&1
date -u >> $OUT/env.txt
