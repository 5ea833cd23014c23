// Error types. Every error names its place: a JSON path, a file, or a step and t.
#pragma once

#include <stdexcept>
#include <string>

namespace diffsde {

// Base of every error the library throws on bad input or a failed run.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad configuration. `path()` is the JSON path of the offending value, e.g.
// "solver.order" or "sweep.solvers[2].eta"; what() is "PATH: MESSAGE".
class ConfigError : public Error {
 public:
  ConfigError(std::string path, std::string message);
  const std::string& path() const { return path_; }
  const std::string& message() const { return message_; }
  // The same error with `prefix` put in front of its path ("grid" + "t" -> "grid.t").
  ConfigError prefixed(const std::string& prefix) const;

 private:
  std::string path_;
  std::string message_;
};

// A file that cannot be read or written, or whose content is malformed.
class IoError : public Error {
 public:
  IoError(std::string file, const std::string& message);
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

// A run that produced NaN/Inf or otherwise broke down, at a given step and time.
class NumericalError : public Error {
 public:
  NumericalError(long step, double t, const std::string& message);
  long step() const { return step_; }
  double t() const { return t_; }

 private:
  long step_;
  double t_;
};

// Joins a JSON path and a key: join_path("solver", "eta") == "solver.eta",
// join_path("", "eta") == "eta", join_path("solvers", 2) == "solvers[2]".
std::string join_path(const std::string& path, const std::string& key);
std::string join_path(const std::string& path, std::size_t index);

// A double in the fewest significant digits (15 to 17) that read back exactly, for messages.
std::string format_double(double value);

}  // namespace diffsde
