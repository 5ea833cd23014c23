#include "diffsde/io.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "diffsde/error.hpp"

namespace diffsde {

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(path, std::string("cannot open for writing: ") + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw IoError(path, "write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw IoError(path, "cannot rename the temp file into place: " + why);
  }
}

void check_writable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw IoError(path, "an empty file name");
  if (fs::is_directory(path, ec)) throw IoError(path, "is a directory, not a file");
  const fs::path parent = fs::path(path).parent_path();
  const std::string folder = parent.empty() ? "." : parent.string();
  if (!fs::is_directory(folder, ec)) throw IoError(path, "cannot be written: the folder " + folder + " does not exist");
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    throw IoError(path, "cannot be written: no permission to create files in " + folder);
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IoError(path, "is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path, "read failed");
  return ss.str();
}

std::string parent_dir(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

std::string resolve_path(const std::string& base_dir, const std::string& name) {
  const std::filesystem::path p(name);
  if (p.is_absolute() || base_dir.empty()) return name;
  return (std::filesystem::path(base_dir) / p).string();
}

}  // namespace diffsde
