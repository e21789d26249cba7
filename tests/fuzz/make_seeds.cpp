// Writes the seed corpus for fuzz_load into the directory given: valid checkpoints of every
// optimizer kind over the fuzzer's fixed tensor sets, in float and double, with and without a
// schedule, after enough steps that SOAP has refreshed its basis.
#include "fuzz_common.hpp"

#include <cstdio>
#include <fstream>
#include <string>

namespace {

template <class T>
void write_seed(zoo::Kind kind, bool schedule, const std::string& dir) {
  auto model = zoo::make_model<T>(kind);
  auto opt = zoo::attach(model);
  if (schedule) opt->set_schedule(dualopt::Schedule::warmup_cosine(2, 50, 0.1));
  zoo::run(*opt, model, 0, 5);
  const std::string path = dir + "/" + zoo::kind_name(kind) + (sizeof(T) == 4 ? "_f" : "_d") + (schedule ? "_sched" : "");
  opt->save(path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  for (zoo::Kind kind : zoo::kAll)
    for (bool schedule : {false, true}) {
      write_seed<float>(kind, schedule, argv[1]);
      write_seed<double>(kind, schedule, argv[1]);
    }
  return 0;
}
