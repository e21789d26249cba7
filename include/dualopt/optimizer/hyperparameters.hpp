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

// The values a hyperparameter may take, declared beside the field in its Config's
// for_each_field (through visit_field). Every double must also be finite in the scalar type.
enum class Constraint : unsigned char {
  Any,          // any (finite) value
  NonNegative,  // >= 0: learning rates, weight decay
  Epsilon,      // >= 0 and normal in T: keeps v^(1/2) + eps away from 0 (0 / 0 for a zero gradient)
  Beta,         // in [0, 1): a beta of 1 divides by zero in the bias corrections
  BelowOne,     // < 1 (negative values may carry a meaning, e.g. SOAP's shampoo_beta)
  Iterations,   // an int in [0, 100]: iteration counts
  Period,       // an int >= 1: refresh periods
};

// How a Config hands one field to a visitor: f(name, field, constraint), or f(name, field) for
// a visitor that takes no constraint (checkpoint code, user code written for two arguments).
template <class F, class V>
void visit_field(F& f, const char* name, V& field, Constraint c = Constraint::Any) {
  if constexpr (std::is_invocable_v<F&, const char*, V&, Constraint>)
    f(name, field, c);
  else
    f(name, field);
}

template <class T>
class GroupBase;

namespace detail {
// Why value v of hyperparameter `name` (of rule `rule`) is one no step can work with under its
// constraint, or "" when it is usable.
template <class T, class V>
std::string field_problem(const char* rule, const char* name, const V& v, Constraint c) {
  auto refuse = [&](const char* why) {
    std::ostringstream os;
    os << rule << " hyperparameter " << name << " = " << v << " " << why;
    return os.str();
  };
  if constexpr (std::is_same_v<V, double>) {
    if (!std::isfinite(v)) return refuse("is not finite");
    if (!std::isfinite(T(v))) return refuse(std::is_same_v<T, float> ? "overflows float" : "overflows double");
    if ((c == Constraint::NonNegative || c == Constraint::Epsilon) && v < 0) return refuse("is negative");
    // An eps that is zero or subnormal in T cannot keep the denominator from 0, and its
    // reciprocal could overflow.
    if (c == Constraint::Epsilon && !(T(v) >= std::numeric_limits<T>::min()))
      return refuse(std::is_same_v<T, float> ? "is zero or subnormal in float (use at least 1.2e-38)"
                                             : "is zero or subnormal in double (use at least 2.3e-308)");
    if (c == Constraint::Beta && !(v >= 0 && v < 1)) return refuse("is outside [0, 1)");
    if (c == Constraint::BelowOne && v >= 1) return refuse("is not below 1");
  } else if constexpr (std::is_same_v<V, int>) {
    if (c == Constraint::Iterations && (v < 0 || v > 100)) return refuse("is outside [0, 100]");
    if (c == Constraint::Period && v < 1) return refuse("is below 1");
  }
  return "";
}

// The first hyperparameter of g that no step can work with, as a message ("" when all are usable).
template <class T>
std::string config_problem(GroupBase<T>& g) {
  return g.config_problem();
}
}  // namespace detail
}  // namespace dualopt
