#pragma once
// The one exception type dualopt throws for bad input, so callers can catch it apart
// from their own std::invalid_argument. Messages name the tensor and the reason.
#include <stdexcept>
#include <string>

namespace dualopt {

class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

inline Error tensor_error(const std::string& name, const std::string& why) {
  return Error("dualopt: tensor '" + name + "': " + why);
}

}  // namespace dualopt
