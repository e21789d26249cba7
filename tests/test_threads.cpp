// Results that must not depend on how a step is run. step() spreads tensors (and chunks of large
// elementwise tensors) over threads; every unit is computed the same way whichever thread runs
// it, so parameters and state must be bitwise identical for 1 and 2 threads, and wherever the
// trainer's buffers start, for every optimizer.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in src/instances/
#include "optimizer_zoo.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace test_threads {  // a namespace per file: the test files are compiled together (unity build)

using namespace dualopt;
using zoo::Kind;

namespace {
// More than one chunk (2^18 elements), with a ragged last chunk.
constexpr std::size_t kBig = (std::size_t(1) << 18) + 37851;
static_assert(kBig > dualopt::detail::kChunk, "the big tensor must span several chunks");
}  // namespace

TEMPLATE_TEST_CASE("results are bitwise identical for 1 and 2 threads", "", float, double) {
  using T = TestType;
  for (Kind kind : zoo::kAll) {
    INFO(zoo::kind_name(kind));
    auto m1 = zoo::make_model<T>(kind, kBig);
    auto m2 = zoo::make_model<T>(kind, kBig);
    auto one = zoo::attach(m1);
    auto two = zoo::attach(m2);
    one->set_threads(1);
    two->set_threads(2);
    CHECK(one->threads() == 1);
#ifdef _OPENMP
    REQUIRE(two->threads() == 2);
#else
    WARN("built without OpenMP: both runs are single-threaded");
#endif
    two->set_schedule(Schedule::warmup_linear(2, 10));
    one->set_schedule(Schedule::warmup_linear(2, 10));
    const std::string initial = zoo::param_snapshot(m1);
    zoo::run(*one, m1, 0, 5);
    zoo::run(*two, m2, 0, 5);
    REQUIRE(zoo::param_snapshot(m1) != initial);
    REQUIRE(zoo::param_snapshot(m1) == zoo::param_snapshot(m2));
    REQUIRE(zoo::state_snapshot(*one) == zoo::state_snapshot(*two));

    // Changing the thread count mid-run changes nothing either.
    one->set_threads(2);
    two->set_threads(1);
    zoo::run(*one, m1, 5, 8);
    zoo::run(*two, m2, 5, 8);
    REQUIRE(zoo::param_snapshot(m1) == zoo::param_snapshot(m2));
    REQUIRE(zoo::state_snapshot(*one) == zoo::state_snapshot(*two));
  }
}

// A trainer's buffers start wherever its allocator put them. Vectorized loops that peel to an
// aligned boundary would sum or round differently for each start; ours must not.
TEMPLATE_TEST_CASE("results are bitwise identical wherever the trainer's buffers start", "", float, double) {
  using T = TestType;
  using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;
  for (Kind kind : zoo::kAll) {
    INFO(zoo::kind_name(kind));
    auto model = zoo::make_model<T>(kind, 1000);
    std::string first;
    for (std::size_t shift : {0, 1, 3, 7}) {  // elements past a 64-byte boundary
      CAPTURE(shift);
      std::vector<Buffer> w(model.tensors.size()), g(model.tensors.size());
      auto opt = zoo::make_optimizer<T>(kind);
      for (std::size_t i = 0; i < model.tensors.size(); ++i) {
        auto& t = model.tensors[i];
        w[i].assign(t.w.size() + shift, T(0));
        g[i].assign(t.g.size() + shift, T(0));
        std::copy(t.w.begin(), t.w.end(), w[i].begin() + std::ptrdiff_t(shift));
        zoo::register_tensor(*opt, kind, t, w[i].data() + shift, g[i].data() + shift);
      }
      for (int k = 0; k < 6; ++k) {
        for (std::size_t i = 0; i < g.size(); ++i)
          for (std::size_t j = shift; j < g[i].size(); ++j)
            g[i][j] = T(0.1 * std::sin(0.37 * double(j - shift) + 1.3 * k + double(i)) + 0.05 * double(w[i][j]));
        opt->step();
      }
      std::string bytes;
      for (const auto& b : w) zoo::append_bytes(bytes, b.data() + shift, b.size() - shift);
      if (shift == 0)
        first = bytes;
      else
        CHECK(bytes == first);
    }
  }
}

}  // namespace test_threads
