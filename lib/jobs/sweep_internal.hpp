// What the sweep's translation units share (sweep_parse.cpp, sweep_run.cpp,
// sweep_results.cpp); internal to diffsde_jobs, not installed. The API is diffsde/sweep.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "diffsde/noise.hpp"
#include "diffsde/sweep.hpp"

namespace diffsde::sweep_internal {

// The noise of a seed from sample `first_sample` on: the Brownian tree on [0, t_max] when
// problem.noise is brownian_tree, else Philox (sweep_run.cpp).
std::unique_ptr<NoiseSource> make_noise(const Sweep& sweep, std::uint64_t seed, std::uint64_t first_sample);

// FILE.rank-R-of-K: the file rank R of K appends its lines to (sweep_results.cpp).
std::string rank_file(const std::string& out, int rank, int ranks);

// Appends whole lines to a file: one write per line, then the OS has it (a kill -9
// loses at most a line being written, which --resume ignores).
class LineAppender {
 public:
  explicit LineAppender(std::string path);
  ~LineAppender();
  LineAppender(const LineAppender&) = delete;
  LineAppender& operator=(const LineAppender&) = delete;

  void append(const std::string& line);

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
};

// Rank 0's work on the file before any cell runs: start it over (options.force), or keep
// its cells (options.resume, a torn last line cut off) and fold in the rank files an
// interrupted run left (sweep_results.cpp).
void prepare_output(const Sweep& sweep, const std::string& out, const SweepRunOptions& options);

}  // namespace diffsde::sweep_internal
