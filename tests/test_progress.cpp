// The progress reporter of the long commands: what it writes in each style, written to a
// string stream instead of stderr.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "diffsde/progress.hpp"

using diffsde::ProgressReporter;
using diffsde::ProgressStyle;

namespace {

long count_of(const std::string& text, const std::string& what) {
  long n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("clock text of a duration") {
  CHECK(ProgressReporter::clock_text(0) == "0:00");
  CHECK(ProgressReporter::clock_text(59.4) == "0:59");
  CHECK(ProgressReporter::clock_text(61) == "1:01");
  CHECK(ProgressReporter::clock_text(3661) == "1:01:01");
  CHECK(ProgressReporter::clock_text(std::numeric_limits<double>::quiet_NaN()) == "?");
  CHECK(ProgressReporter::clock_text(-1) == "?");
}

TEST_CASE("quiet progress writes nothing") {
  std::ostringstream out;
  {
    ProgressReporter p("sampling", ProgressStyle::quiet, out, 0.0);
    p.update(0.5, "1/2 steps");
    p.finish("2/2 steps");
  }
  CHECK(out.str().empty());
}

TEST_CASE("plain lines: one per interval with the percentage and an ETA, one at the end") {
  std::ostringstream out;
  {
    ProgressReporter p("sampling", ProgressStyle::lines, out, 0.0);  // every update is due
    p.update(0.25, "1/4 steps");
    p.update(0.5, "2/4 steps");
    p.finish("4/4 steps");
    p.finish("again");  // once only
    p.update(0.9, "late");
  }
  const std::string s = out.str();
  INFO(s);
  CHECK(count_of(s, "\n") == 3);
  CHECK(s.find("\r") == std::string::npos);
  CHECK(s.find("sampling: 1/4 steps (25%), 0:00 elapsed, ETA 0:00\n") == 0);
  CHECK(s.find("sampling: 2/4 steps (50%)") != std::string::npos);
  CHECK(s.find("sampling: 4/4 steps, done in 0:00\n") != std::string::npos);
  CHECK(s.find("again") == std::string::npos);
  CHECK(s.find("late") == std::string::npos);
}

TEST_CASE("plain lines: a run shorter than the interval prints nothing") {
  std::ostringstream out;
  {
    ProgressReporter p("likelihood", ProgressStyle::lines, out, 1e9);
    for (int i = 1; i <= 100; ++i) p.update(i / 100.0, std::to_string(i) + "/100 rows");
    p.finish("100/100 rows");
  }
  CHECK(out.str().empty());
}

TEST_CASE("a bar is redrawn in place and ends its line") {
  std::ostringstream out;
  {
    ProgressReporter p("cells", ProgressStyle::bar, out, 10.0);
    p.update(0.5, "3/6 cells");
    p.update(2.0, "6/6 cells");  // clamped to a full bar
    p.finish("6/6 cells");
  }
  const std::string s = out.str();
  INFO(s);
  CHECK(count_of(s, "\r") == 3);
  CHECK(count_of(s, "\n") == 1);
  CHECK(s.back() == '\n');
  CHECK(s.find("\rcells [" + std::string(15, '#') + std::string(15, '.') + "] 3/6 cells, 0:00 elapsed, ETA 0:00") !=
        std::string::npos);
  CHECK(s.find("[" + std::string(30, '#') + "] 6/6 cells") != std::string::npos);
}

TEST_CASE("a bar left unfinished (a failed run) still ends its line") {
  std::ostringstream out;
  {
    ProgressReporter p("training", ProgressStyle::bar, out, 10.0);
    p.update(0.1, "step 1/10");
  }
  CHECK(out.str().back() == '\n');
  std::ostringstream none;
  { ProgressReporter p("training", ProgressStyle::bar, none, 10.0); }
  CHECK(none.str().empty());  // nothing drawn, nothing to end
}
