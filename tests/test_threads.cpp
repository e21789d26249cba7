// step() spreads tensors (and chunks of large elementwise tensors) over threads; every unit is
// computed the same way whichever thread runs it, so parameters and state must be bitwise
// identical for 1 and 2 threads, for every optimizer.
#include <dualopt/instances.hpp>  // first: the optimizers are compiled once, in tests/instances/
#include "optimizer_zoo.hpp"

#include <catch2/catch.hpp>
#include <dualopt/dualopt.hpp>

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
