#!/usr/bin/env bash
# Fuzzes checkpoint loading: builds tests/fuzz/fuzz_load.cpp with libFuzzer, ASan and UBSan,
# writes a seed corpus of valid checkpoints (tests/fuzz/make_seeds.cpp) to a temporary
# directory, and runs for the given number of seconds (default 60).
# Exits non-zero on any finding; the offending inputs are kept and their directory printed.
#   usage: bash tests/fuzz/run_fuzz.sh [seconds]        (CXX_FUZZ overrides clang++-14)
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cxx="${CXX_FUZZ:-clang++-14}"
work="$(mktemp -d "${TMPDIR:-/tmp}/dualopt_fuzz.XXXXXX")"
keep=0
trap '[ "$keep" = 1 ] || rm -rf "$work"' EXIT

common=(-std=c++17 -O1 -gline-tables-only -I "$root/include" -isystem /usr/include/eigen3 -fno-sanitize-recover=all)
echo "== building the fuzzer ($cxx)"
# The two programs build in parallel (each compiles every optimizer: minutes, not seconds).
"$cxx" "${common[@]}" -fsanitize=fuzzer,address,undefined "$root/tests/fuzz/fuzz_load.cpp" -o "$work/fuzz_load" &
fuzzer_build=$!
# The seed writer only saves valid checkpoints: no sanitizers, no optimization, quick to build.
"$cxx" -std=c++17 -O0 -I "$root/include" -isystem /usr/include/eigen3 "$root/tests/fuzz/make_seeds.cpp" -o "$work/make_seeds"
wait "$fuzzer_build"

mkdir -p "$work/corpus" "$work/artifacts"
"$work/make_seeds" "$work/corpus"
echo "== fuzzing for ${seconds}s from $(ls "$work/corpus" | wc -l) seed checkpoints"
status=0
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$work/fuzz_load" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  keep=1
  echo "fuzz_load: FINDING (exit status $status); inputs kept in $work/artifacts" >&2
  exit 1
fi
echo "fuzz_load: no findings in ${seconds}s"
