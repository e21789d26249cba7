#!/bin/bash
# The binaries and the carried dependencies live in the ignored .dev/ (bench/README.md).
# Build the server's binaries here: g++ -march=sapphirerapids (the server is an Emerald Rapids Xeon).
set -e
cd "$(dirname "$0")/../.."
B=${1:-.dev/b1}
mkdir -p $B/bench
F="-std=c++17 -O3 -march=sapphirerapids -fopenmp -ffp-contract=off -DNDEBUG -DDUALOPT_BF16_ONEDNN -DDUALOPT_BLAS_ONEDNN -DDUALOPT_EXTERN_INSTANCES -Iinclude -Ibench -Itests -isystem /usr/include/eigen3 -Wno-maybe-uninitialized -Wno-uninitialized"
L="-ldnnl -lbenchmark -lpthread -Wl,-rpath,\$ORIGIN/../../deps/lib"
g++ $F -c src/instances/float.cpp -o $B/f.o &
g++ $F -c src/instances/double.cpp -o $B/d.o &
wait
for b in bench_newton_schulz bench_step bench_bf16_ns; do g++ $F bench/$b.cpp $B/f.o $B/d.o $L -o $B/bench/$b & done
g++ $F bench/tool_bf16_step.cpp $B/f.o $B/d.o -ldnnl -Wl,-rpath,\$ORIGIN/../../deps/lib -o $B/bench/tool_bf16_step &
wait
M="-std=c++17 -O3 -march=sapphirerapids -fopenmp -ffp-contract=off -DNDEBUG -Iinclude -isystem /usr/include/eigen3"
for m in amx_kernel_variants read_and_sweep huge_pages; do g++ $M bench/micro/$m.cpp -o $B/$m & done
wait
ls -la $B $B/bench
