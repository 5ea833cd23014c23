// Sweep results files: reading, merging, appending lines, truncating a torn last line, and
// the rank files of MPI runs (see sweep.hpp and docs/sweeps.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/sweep.hpp"
#include "sweep_internal.hpp"

namespace diffsde {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Results files.

ResultsFile read_results(const std::string& path) {
  const std::string text = read_file(path);
  ResultsFile out;
  std::size_t start = 0, line_number = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      out.torn_bytes = text.size() - start;
      break;
    }
    ++line_number;
    const std::string line = text.substr(start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) {
      json j;
      try {
        j = json::parse(line);
      } catch (const json::parse_error&) {
        throw IoError(path, "line " + std::to_string(line_number) + " is not JSON (a results file has one JSON object per line)");
      }
      if (!j.is_object() || !j.contains("key") || !j["key"].is_string() || !j.contains("sweep") ||
          !j.contains("cell"))
        throw IoError(path, "line " + std::to_string(line_number) + " is not a sweep results line (no key, sweep or cell)");
      out.lines.push_back(std::move(j));
    }
    start = end + 1;
    out.complete_bytes = start;
  }
  return out;
}

std::vector<json> merge_results(const std::vector<std::string>& paths, std::ostream* log) {
  if (paths.empty()) throw Error("merge: no input files");
  std::vector<json> merged;
  std::map<std::string, std::size_t> seen;
  std::string sweep_hash, first_file;
  long conflicts = 0;
  for (const auto& path : paths) {
    const ResultsFile file = read_results(path);
    if (file.torn_bytes > 0 && log != nullptr)
      *log << path << ": ignored a torn last line (" << file.torn_bytes << " bytes)\n";
    for (std::size_t i = 0; i < file.lines.size(); ++i) {
      const json& line = file.lines[i];
      const std::string hash = line["sweep"].is_string() ? line["sweep"].get<std::string>() : "";
      if (sweep_hash.empty()) {
        sweep_hash = hash;
        first_file = path;
      } else if (hash != sweep_hash) {
        throw IoError(path, "line " + std::to_string(i + 1) + " belongs to another sweep (sweep " + hash + ", but " +
                                first_file + " has sweep " + sweep_hash + ")");
      }
      const std::string key = line["key"].get<std::string>();
      auto it = seen.find(key);
      if (it == seen.end()) {
        seen.emplace(key, merged.size());
        merged.push_back(line);
      } else {
        json a = merged[it->second], b = line;
        a.erase("seconds");
        b.erase("seconds");
        if (a != b) ++conflicts;
      }
    }
  }
  if (conflicts > 0 && log != nullptr)
    *log << "merge: " << conflicts << " cell(s) appear more than once with different results; kept the first\n";
  std::stable_sort(merged.begin(), merged.end(), [](const json& a, const json& b) {
    return a["cell"].get<long>() < b["cell"].get<long>();
  });
  return merged;
}

// ---------------------------------------------------------------------------
// Appending lines; the output file of a run and its rank files.

namespace sweep_internal {

std::string rank_file(const std::string& out, int rank, int ranks) {
  return out + ".rank-" + std::to_string(rank) + "-of-" + std::to_string(ranks);
}

namespace {

// Rank files left by an interrupted MPI run (any rank count).
std::vector<std::string> leftover_rank_files(const std::string& out) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  const fs::path p(out);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".rank-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.find("-of-") != std::string::npos)
      found.push_back((p.parent_path() / name).string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

void truncate_file(const std::string& path, std::size_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0)
    throw IoError(path, std::string("cannot truncate: ") + std::strerror(errno));
}

void check_lines(const ResultsFile& file, const Sweep& sweep, const std::string& path) {
  for (std::size_t i = 0; i < file.lines.size(); ++i) {
    const json& line = file.lines[i];
    if (line["sweep"] != sweep.hash)
      throw IoError(path, "line " + std::to_string(i + 1) + " belongs to another sweep (its problem, reference or "
                          "metrics differ: sweep " + line["sweep"].dump() + ", this one \"" + sweep.hash +
                          "\"); write to another file, or pass --force to start over");
  }
}

}  // namespace

LineAppender::LineAppender(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(path_, std::string("cannot open for appending: ") + std::strerror(errno));
}

LineAppender::~LineAppender() {
  if (fd_ >= 0) ::close(fd_);
}

void LineAppender::append(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string bytes = line + "\n";
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, std::string("write failed: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

// Rank 0's work on the file before any cell runs.
void prepare_output(const Sweep& sweep, const std::string& out, const SweepRunOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  const auto leftovers = leftover_rank_files(out);
  if (!options.resume) {
    const bool has_cells = (exists && fs::file_size(out, ec) > 0) || !leftovers.empty();
    if (has_cells && !options.force)
      throw IoError(out, "already holds results; pass --resume to run only the missing cells, or --force to start over");
    for (const auto& f : leftovers) fs::remove(f, ec);
    write_file_atomic(out, "");
    return;
  }
  std::set<std::string> keys;
  if (exists) {
    const ResultsFile file = read_results(out);
    check_lines(file, sweep, out);
    for (const auto& line : file.lines) keys.insert(line["key"].get<std::string>());
    if (file.torn_bytes > 0) {
      truncate_file(out, file.complete_bytes);
      if (options.log != nullptr)
        *options.log << "resume: ignored a torn last line of " << out << " (" << file.torn_bytes << " bytes)\n";
    }
  } else {
    write_file_atomic(out, "");
  }
  if (leftovers.empty()) return;
  LineAppender appender(out);
  for (const auto& f : leftovers) {
    const ResultsFile file = read_results(f);
    check_lines(file, sweep, f);
    for (const auto& line : file.lines)
      if (keys.insert(line["key"].get<std::string>()).second) appender.append(line.dump());
    fs::remove(f, ec);
  }
}

}  // namespace sweep_internal

}  // namespace diffsde
