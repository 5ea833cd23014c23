#include "diffsde/provenance.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include <Eigen/Core>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/scores/torch_model.hpp"

namespace diffsde {

const char* build_git_commit();  // generated at build time (cmake/git_commit.cmake)

namespace {

using nlohmann::json;

// An EVP SHA-256 context fed by `feed(update)`, as 64 hex digits.
template <class Feed>
std::string sha256_of(Feed&& feed, const std::string& what) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw Error("sha256: OpenSSL could not start a digest of " + what);
  feed([&](const void* data, std::size_t size) {
    if (EVP_DigestUpdate(ctx.get(), data, size) != 1) throw Error("sha256: OpenSSL failed on " + what);
  });
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) throw Error("sha256: OpenSSL failed on " + what);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// The registry object at config[key] with its defaults filled in.
template <class T>
void complete(json& config, const char* key, const Registry<T>& registry) {
  if (!config.contains(key)) return;
  json& v = config[key];
  if (v.is_string()) v = json{{"name", v}};
  if (!v.is_object() || !v.contains("name") || !v.at("name").is_string()) return;
  const auto* entry = registry.find(v.at("name").get<std::string>());
  if (entry == nullptr) return;
  for (const ParamSpec& p : entry->params)
    if (!v.contains(p.name) && !p.default_value.is_null()) v[p.name] = p.default_value;
}

void collect_files(const json& v, const std::string& base_dir, std::vector<std::string>& out,
                   std::set<std::string>& seen) {
  if (v.is_object()) {
    for (const auto& item : v.items()) collect_files(item.value(), base_dir, out, seen);
  } else if (v.is_array()) {
    for (const auto& item : v) collect_files(item, base_dir, out, seen);
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    // File names have an extension or a folder; registry names and choices have neither.
    if (s.empty() || (s.find('.') == std::string::npos && s.find('/') == std::string::npos)) return;
    const std::string path = resolve_path(base_dir, s);
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec) && seen.insert(path).second) out.push_back(path);
  }
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path, "cannot be read (to hash it for the output's provenance)");
  return sha256_of(
      [&](const auto& update) {
        std::vector<char> buffer(1 << 16);
        while (in) {
          in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
          const std::streamsize n = in.gcount();
          if (n > 0) update(buffer.data(), static_cast<std::size_t>(n));
        }
        if (in.bad()) throw IoError(path, "a read failed (hashing it for the output's provenance)");
      },
      path);
}

std::string sha256_text(const std::string& text) {
  return sha256_of([&](const auto& update) { update(text.data(), text.size()); }, "a string");
}

json build_info_json() {
  return {{"version", DIFFSDE_JOBS_VERSION},
          {"commit", build_git_commit()},
          {"torch", torch_models_enabled()},
#if defined(__VERSION__)
          {"compiler", __VERSION__},
#endif
          {"eigen", std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                        std::to_string(EIGEN_MINOR_VERSION)}};
}

json with_defaults(const json& config) {
  if (!config.is_object()) return config;
  json out = config;
  complete(out, "schedule", schedule_registry());
  complete(out, "model", model_registry());
  complete(out, "grid", grid_registry());
  complete(out, "solver", solver_registry());
  return out;
}

json file_info_json(const std::string& path) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(path, "cannot be read (to record it in the output's provenance)");
  return {{"path", path}, {"bytes", static_cast<std::uint64_t>(bytes)}, {"sha256", sha256_file(path)}};
}

std::vector<std::string> config_input_files(const json& config, const std::string& base_dir,
                                            const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  collect_files(config, base_dir, out, seen);
  for (const auto& f : extra)
    if (seen.insert(f).second) out.push_back(f);
  return out;
}

json provenance_json(const json& config, const std::vector<std::string>& input_files) {
  json inputs = json::array();
  for (const auto& f : input_files) inputs.push_back(file_info_json(f));
  return {{"diffsde", build_info_json()}, {"config", config}, {"inputs", inputs}};
}

void write_npy_sidecar(const std::string& npy_path, const json& provenance, const std::vector<long>& shape) {
  json sidecar = {{"file", std::filesystem::path(npy_path).filename().string()}, {"shape", shape},
                  {"dtype", "float64"}, {"provenance", provenance}};
  write_file_atomic(npy_path + ".json", sidecar.dump(2) + "\n");
}

}  // namespace diffsde
