// Small file helpers shared by the writers: nothing already written is lost or
// corrupted, because every file is written to a temp file and renamed into place.
#pragma once

#include <string>

namespace diffsde {

// Writes `bytes` to `path` atomically (PATH.tmp.PID in the same folder, then rename).
// Throws IoError naming the file; on failure no temp file is left behind.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Checks, before any work, that `path` can be written by write_file_atomic: its folder
// exists and takes new files, and the path is not a folder. IoError naming it otherwise.
void check_writable(const std::string& path);

// Reads a whole file; IoError naming it when it cannot be read.
std::string read_file(const std::string& path);

// The folder of `path` ("" for a bare file name) and `name` resolved against it
// (absolute names stay as they are).
std::string parent_dir(const std::string& path);
std::string resolve_path(const std::string& base_dir, const std::string& name);

}  // namespace diffsde
