// One progress reporter for the long commands (sample, likelihood, sweep with its reference
// solves, train, encode and decode): on a terminal, a bar redrawn in place with the elapsed
// time and an ETA; elsewhere (a log, CI), a plain line every `interval` seconds and one at
// the end (a run shorter than the interval prints none); nothing when quiet. The commands write it to stderr, so stdout keeps only
// their results.
#pragma once

#include <chrono>
#include <iosfwd>
#include <mutex>
#include <string>

namespace diffsde {

enum class ProgressStyle { quiet, bar, lines };

// `bar` when stderr is a terminal, `lines` otherwise; `quiet` when asked.
ProgressStyle progress_style(bool quiet);

class ProgressReporter {
 public:
  // label: what runs ("sampling", "reference ode"); out: where to write (std::cerr).
  ProgressReporter(std::string label, ProgressStyle style, std::ostream& out, double interval_seconds = 10.0);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // The work done so far as a fraction in [0, 1] (by cost: the ETA assumes the rest goes
  // at the same rate), and its counts as text ("12/50 steps"). Safe from several threads.
  void update(double fraction, const std::string& counts);
  // The end: the final counts and the time taken (a bar ends its line). Once; later calls
  // and the destructor do nothing more.
  void finish(const std::string& counts);

  // "m:ss" (or "h:mm:ss") of a duration; "?" when not finite.
  static std::string clock_text(double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  double elapsed() const;
  void draw(double fraction, const std::string& counts, bool final);

  std::string label_;
  ProgressStyle style_;
  std::ostream& out_;
  double interval_;
  Clock::time_point start_;
  double last_line_ = -1;  // elapsed seconds at the last plain line (-1: none yet)
  bool drawn_ = false, finished_ = false;
  std::mutex mutex_;
};

}  // namespace diffsde
