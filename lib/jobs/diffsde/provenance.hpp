// What produced an output: diffsde's version, git commit and build options, the config as
// it ran (every registry object with its defaults filled in), and the input files' sizes
// and SHA-256 hashes. The summaries of sample, likelihood, encode and decode carry it under
// "provenance", and every .npy they write gets a sidecar `FILE.npy.json` with it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffsde {

// SHA-256 of a file's bytes, 64 lowercase hex digits (OpenSSL's EVP); IoError naming the
// file when it cannot be read.
std::string sha256_file(const std::string& path);
// SHA-256 of a string, as above.
std::string sha256_text(const std::string& text);

// {"version", "commit" (git, "-dirty" when the tree had changes; "unknown" outside a git
// checkout), "torch", "mpi", "compiler"}: what `diffsde --version` reports.
nlohmann::json build_info_json();

// A sample-style config with its registry objects ("schedule", "model", "grid", "solver",
// "noise", "reference" solvers and grids are left alone) completed: each object's
// parameters that have a default and are not given get it, and a bare name becomes
// {"name": ...}. Objects whose name is unknown are left as they are (the run refuses them).
nlohmann::json with_defaults(const nlohmann::json& config);

// {"path", "bytes", "sha256"} of one file.
nlohmann::json file_info_json(const std::string& path);

// The files a config names: every string value (at any depth) that names an existing
// regular file, relative to base_dir, plus `extra` (data files named on the command line);
// each once, in order of first mention.
std::vector<std::string> config_input_files(const nlohmann::json& config, const std::string& base_dir,
                                            const std::vector<std::string>& extra = {});

// {"diffsde": build_info_json(), "config": config, "inputs": [file_info_json(f) ...]}.
nlohmann::json provenance_json(const nlohmann::json& config, const std::vector<std::string>& input_files);

// Writes `provenance` (with the array's "shape") beside a .npy as FILE.npy.json, atomically.
void write_npy_sidecar(const std::string& npy_path, const nlohmann::json& provenance,
                       const std::vector<long>& shape);

}  // namespace diffsde
