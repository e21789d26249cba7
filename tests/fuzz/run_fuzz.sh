#!/usr/bin/env bash
# Fuzzes checkpoint loading for the given number of seconds: writes a seed corpus of valid
# checkpoints with the seed writer, then runs the libFuzzer target on it. Both programs are
# built by a sanitized clang build, which also runs this script as the ctest test
# fuzz_checkpoint_load:
#   CXX=clang++-14 cmake -S . -B build-asan -DDUALOPT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
#   cmake --build build-asan -j2 --target fuzz_load fuzz_make_seeds
#   bash tests/fuzz/run_fuzz.sh 60 build-asan/tests/fuzz_load build-asan/tests/fuzz_make_seeds
# Exits non-zero on any finding; the offending inputs are kept and their directory printed.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 <seconds> <fuzz_load> <fuzz_make_seeds>" >&2; exit 2; }
seconds="$1" fuzzer="$2" seeds="$3"
work="$(mktemp -d "${TMPDIR:-/tmp}/dualopt_fuzz.XXXXXX")"
keep=0
trap '[ "$keep" = 1 ] || rm -rf "$work"' EXIT

mkdir -p "$work/corpus" "$work/artifacts"
"$seeds" "$work/corpus"
echo "== fuzzing for ${seconds}s from $(ls "$work/corpus" | wc -l) seed checkpoints"
status=0
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$fuzzer" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
  keep=1
  echo "fuzz_load: FINDING (exit status $status); inputs kept in $work/artifacts" >&2
  exit 1
fi
echo "fuzz_load: no findings in ${seconds}s"
