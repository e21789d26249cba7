#pragma once
// Hyperparameters as the checkpoint and the checks see them: a pointer to each field of a
// rule's Config, and the values no step can work with.
#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>

namespace dualopt {

// A pointer to one field of a rule's Config, reached by name through Config::for_each_field,
// so checkpoints can save and restore any rule's hyperparameters without knowing the rule.
using HyperparameterRef = std::variant<double*, int*, std::size_t*, bool*>;

template <class T>
class GroupBase;

namespace detail {
// A hyperparameter value no step can work with, by the Configs' field names ("" when all are
// usable): non-finite numbers, negative rates, betas outside [0, 1) (1 divides by zero in the
// bias corrections), iteration counts outside [0, 100], a refresh period below 1.
template <class T>
std::string config_problem(GroupBase<T>& g) {
  std::string problem;
  g.for_each_hyperparameter([&](const char* name, HyperparameterRef r) {
    const std::string n = name;
    auto refuse = [&](auto value, const char* why) {
      if (!problem.empty()) return;
      std::ostringstream os;
      os << g.rule_name() << " hyperparameter " << n << " = " << value << " " << why;
      problem = os.str();
    };
    if (const auto* d = std::get_if<double*>(&r)) {
      const double v = **d;
      const bool rate = n == "lr" || n == "eps" || n == "weight_decay";
      const bool beta = n == "beta" || n == "beta1" || n == "beta2" || n == "offset_beta";
      if (!std::isfinite(v))
        refuse(v, "is not finite");
      else if (!std::isfinite(T(v)))
        refuse(v, std::is_same_v<T, float> ? "overflows float" : "overflows double");
      else if (rate && v < 0)
        refuse(v, "is negative");
      else if (n == "eps" && !(T(v) >= std::numeric_limits<T>::min()))
        // eps keeps v^(1/2) + eps away from 0 (a zero gradient would give 0 / 0); one that is
        // zero or subnormal in T cannot, and its reciprocal could overflow.
        refuse(v, std::is_same_v<T, float> ? "is zero or subnormal in float (use at least 1.2e-38)"
                                          : "is zero or subnormal in double (use at least 2.3e-308)");
      else if (beta && !(v >= 0 && v < 1))
        refuse(v, "is outside [0, 1)");
      else if (n == "shampoo_beta" && v >= 1)
        refuse(v, "is not below 1");
    } else if (const auto* i = std::get_if<int*>(&r)) {
      const int v = **i;
      const bool steps = n.size() >= 5 && n.compare(n.size() - 5, 5, "steps") == 0;
      if (steps && (v < 0 || v > 100))
        refuse(v, "is outside [0, 100]");
      else if (n == "precondition_frequency" && v < 1)
        refuse(v, "is below 1");
    }
  });
  return problem;
}
}  // namespace detail
}  // namespace dualopt
