#pragma once
// The flags our Newton-Schulz benchmarks read before Google Benchmark's own: --threads=1,2,...
// (the thread counts to run) and whether the output is JSON (Initialize removes the flags it
// knows, so this looks first). Then Google Benchmark is initialized with the rest.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

struct BenchArgs {
  bool json = false;
  std::vector<int> threads = {1, 2};
};

// False (after a message naming `program`) on a bad --threads list or an unknown flag.
inline bool init_bench(int argc, char** argv, const char* program, BenchArgs& out) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strstr(argv[i], "--benchmark_format=json")) out.json = true;
    if (std::strncmp(argv[i], "--threads=", 10) != 0) {
      args.push_back(argv[i]);
      continue;
    }
    out.threads.clear();
    for (const char* p = argv[i] + 10; *p;) {
      char* end = nullptr;
      const long t = std::strtol(p, &end, 10);
      if (end == p || t < 1) {
        std::fprintf(stderr, "%s: bad --threads list '%s'\n", program, argv[i] + 10);
        return false;
      }
      out.threads.push_back(int(t));
      p = *end == ',' ? end + 1 : end;
    }
  }
  int nargs = int(args.size());
  benchmark::Initialize(&nargs, args.data());
  return !benchmark::ReportUnrecognizedArguments(nargs, args.data());
}
