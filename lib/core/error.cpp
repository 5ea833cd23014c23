#include "diffsde/error.hpp"

#include <cstdlib>
#include <sstream>
#include <string>

namespace diffsde {

ConfigError::ConfigError(std::string path, std::string message)
    : Error(path.empty() ? message : path + ": " + message),
      path_(std::move(path)),
      message_(std::move(message)) {}

ConfigError ConfigError::prefixed(const std::string& prefix) const {
  if (prefix.empty()) return *this;
  if (path_.empty()) return ConfigError(prefix, message_);
  // An index path ("[2].eta") joins without a dot.
  return ConfigError(path_.front() == '[' ? prefix + path_ : prefix + "." + path_, message_);
}

IoError::IoError(std::string file, const std::string& message)
    : Error(file + ": " + message), file_(std::move(file)) {}

std::string format_double(double value) {
  // The shortest of 15, 16 or 17 significant digits that reads back as the same double.
  for (int digits = 15; digits <= 17; ++digits) {
    std::ostringstream os;
    os.precision(digits);
    os << value;
    if (digits == 17 || std::strtod(os.str().c_str(), nullptr) == value) return os.str();
  }
  return {};
}

namespace {
std::string numerical_message(long step, double t, const std::string& message) {
  return "step " + std::to_string(step) + " (t = " + format_double(t) + "): " + message;
}
}  // namespace

NumericalError::NumericalError(long step, double t, const std::string& message)
    : Error(numerical_message(step, t, message)), step_(step), t_(t) {}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string join_path(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

}  // namespace diffsde
