#!/bin/bash
# Kept as run (session 9): the binaries and the carried dependencies lived in the ignored .dev/ (bench/README.md).
# Server call 1 (session 9): AMX kernel variants, gradient-read variants, float steps with oneDNN f32, 4096 NS.
cd "$(dirname "$0")/../.."
D=.dev/deps
xz -dc $D/libdnnl.so.2.xz > $D/lib/libdnnl.so.2
B=.dev/b1
export LD_LIBRARY_PATH=$PWD/$D/lib
{ nproc; lscpu | grep -E "Model name|Model:|MHz|L1d|L2|L3|NUMA node0"; python3 -c "import torch; print(torch.__version__, torch.get_num_threads())"; date -u; } > $OUT/env.txt 2>&1
ldd $B/bench/bench_step > $OUT/ldd.txt 2>&1
for s in "2048 2048" "768 3072" "1024 4096"; do $B/amxbench $s 1; done > $OUT/amx1.txt 2>&1
for s in "2048 2048" "768 3072"; do OMP_PROC_BIND=close OMP_PLACES=cores $B/amxbench $s 16; done > $OUT/amx16.txt 2>&1
$B/rdbench 1 2 8 16 > $OUT/rd.txt 2>&1
timeout 200 python3 bench/compare_torch.py --build $B --threads 16,8,4,2,1 --repeats 1 --step-repeats 1 \
  --step-kinds adamw,adamw_unchecked,laprop,muon,mango --shapes 768x3072 > $OUT/steps.txt 2>&1
date -u >> $OUT/env.txt
timeout 170 python3 bench/compare_torch.py --build $B --threads 16,8,4,2,1 --repeats 1 --skip-steps --shapes 4096x4096 > $OUT/ns4096.txt 2>&1
date -u >> $OUT/env.txt
