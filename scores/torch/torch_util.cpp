// LibTorch helpers: devices, error text, TorchScript files with diffsde metadata.
#include "diffsde/scores/torch_util.hpp"

#include <torch/csrc/jit/python/update_graph_executor_opt.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "diffsde/error.hpp"

namespace diffsde {

void use_reproducible_torchscript() { torch::jit::setGraphExecutorOptimize(false); }

torch::Device parse_torch_device(const std::string& name) {
  static const std::regex pattern("cpu|cuda(:[0-9]+)?");
  if (!std::regex_match(name, pattern))
    throw Error("device must be cpu, cuda or cuda:N, got '" + name + "'");
  if (name == "cpu") return torch::kCPU;
  if (!torch::cuda::is_available())
    throw Error("device '" + name + "' requested, but this LibTorch sees no CUDA device (" +
                "a CPU-only LibTorch build or no GPU); use \"cpu\"");
  torch::Device device(name);
  if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
    throw Error("device '" + name + "': only " + std::to_string(torch::cuda::device_count()) +
                " CUDA device(s) visible");
  return device;
}

std::string torch_error_message(const c10::Error& e) {
  const std::string full = e.what_without_backtrace();
  const auto end = full.find('\n');
  return end == std::string::npos ? full : full.substr(0, end);
}

std::string torch_error_message(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return torch_error_message(*c10_error);
  const std::string full = e.what();
  const auto line_at = [&](std::size_t begin) {
    const auto end = full.find('\n', begin);
    return full.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  };
  // The interpreter's form: a header line, one or two "Traceback of TorchScript ...:"
  // sections (frames and code lines), then "RuntimeError: MESSAGE".
  const auto traceback = full.rfind("\nTraceback of TorchScript");
  if (traceback != std::string::npos) {
    const std::string label = "\nRuntimeError: ";
    const auto error = full.find(label, traceback);
    if (error != std::string::npos) return line_at(error + label.size());
  }
  return line_at(0);
}

torch::jit::Module load_torchscript(const std::string& path, torch::Device device,
                                    nlohmann::json* metadata) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw IoError(path, "file not found");
  if (fs::is_directory(path)) throw IoError(path, "is a directory, not a TorchScript file");
  torch::jit::ExtraFilesMap extra{{"diffsde.json", ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device, extra);
  } catch (const c10::Error& e) {
    throw IoError(path, "not a loadable TorchScript file: " + torch_error_message(e));
  } catch (const std::exception& e) {
    throw IoError(path, std::string("not a loadable TorchScript file: ") + e.what());
  }
  if (metadata) {
    *metadata = nullptr;
    const std::string& text = extra["diffsde.json"];
    if (!text.empty()) {
      try {
        *metadata = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        throw IoError(path, std::string("its diffsde.json metadata is not valid JSON: ") + e.what());
      }
    }
  }
  if (module.find_method("forward") == c10::nullopt)
    throw IoError(path, "the TorchScript module has no forward method");
  return module;
}

void save_torchscript(const torch::jit::Module& module, const std::string& path,
                      const nlohmann::json& metadata) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  try {
    torch::jit::ExtraFilesMap extra{{"diffsde.json", metadata.dump()}};
    module.save(tmp, extra);
  } catch (const c10::Error& e) {
    std::remove(tmp.c_str());
    throw IoError(path, "cannot save: " + torch_error_message(e));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw IoError(path, "cannot rename the temporary file into place: " + ec.message());
  }
}

}  // namespace diffsde
