#include "diffsde/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace diffsde {

ProgressStyle progress_style(bool quiet) {
  if (quiet) return ProgressStyle::quiet;
  return ::isatty(STDERR_FILENO) != 0 ? ProgressStyle::bar : ProgressStyle::lines;
}

ProgressReporter::ProgressReporter(std::string label, ProgressStyle style, std::ostream& out, double interval_seconds)
    : label_(std::move(label)), style_(style), out_(out), interval_(interval_seconds), start_(Clock::now()) {}

ProgressReporter::~ProgressReporter() {
  // A bar left mid-line (the run failed or was cancelled) gets its line ended, so that the
  // error message starts on a line of its own.
  std::lock_guard<std::mutex> lock(mutex_);
  if (style_ == ProgressStyle::bar && drawn_ && !finished_) out_ << "\n" << std::flush;
}

double ProgressReporter::elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

std::string ProgressReporter::clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  std::ostringstream os;
  if (s >= 3600) os << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60;
  else os << s / 60;
  os << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return os.str();
}

void ProgressReporter::update(double fraction, const std::string& counts) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (style_ == ProgressStyle::quiet || finished_) return;
  draw(fraction, counts, false);
}

void ProgressReporter::finish(const std::string& counts) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (style_ == ProgressStyle::quiet || finished_) return;
  draw(1.0, counts, true);
  finished_ = true;
}

void ProgressReporter::draw(double fraction, const std::string& counts, bool final) {
  const double t = elapsed();
  fraction = std::isfinite(fraction) ? std::min(std::max(fraction, 0.0), 1.0) : 0.0;
  std::ostringstream os;
  if (style_ == ProgressStyle::bar) {
    const int width = 30;
    const int filled = static_cast<int>(width * fraction);
    os << "\r" << label_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
       << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << counts << ", "
       << clock_text(t) << " elapsed";
    if (!final && fraction > 0 && fraction < 1) os << ", ETA " << clock_text(t / fraction * (1 - fraction));
    os << "\033[K";
    if (final) os << "\n";
    out_ << os.str() << std::flush;
    drawn_ = true;
    return;
  }
  // Plain lines: one every interval, and one at the end of a run that printed any (a run
  // shorter than the interval prints nothing).
  if (final ? last_line_ < 0 && t < interval_ : t - std::max(last_line_, 0.0) < interval_) return;
  last_line_ = t;
  os << label_ << ": " << counts;
  if (final) {
    os << ", done in " << clock_text(t);
  } else {
    os << " (" << static_cast<int>(100 * fraction) << "%), " << clock_text(t) << " elapsed";
    if (fraction > 0 && fraction < 1) os << ", ETA " << clock_text(t / fraction * (1 - fraction));
  }
  out_ << os.str() << "\n" << std::flush;
}

}  // namespace diffsde
