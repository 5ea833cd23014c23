// Small LibTorch helpers shared by the diffsde_torch sources (includes torch).
#pragma once

#include <torch/script.h>
#include <torch/cuda.h>

#include <nlohmann/json.hpp>
#include <string>

namespace diffsde {

// Runs TorchScript graphs as written: turns off the graph executor's profiling-based
// rewrites (differentiable subgraphs with symbolic gradients, fusion), which otherwise
// change the floating-point results after a module's first calls, so that the first
// and the thousandth evaluation agree bit for bit and a resumed training run equals an
// uninterrupted one. Process-wide; called by enable_torch_models() and train().
void use_reproducible_torchscript();

// "cpu", "cuda", "cuda:N"; Error when malformed or when CUDA is not available.
torch::Device parse_torch_device(const std::string& name);

// The first line of a c10::Error (LibTorch appends a C++ back trace).
std::string torch_error_message(const c10::Error& e);
// One line for any exception a TorchScript call throws: a c10::Error's first line, or, for
// an error inside the TorchScript interpreter (a multi-line "The following operation
// failed..." with the TorchScript traceback), the error line after the traceback.
std::string torch_error_message(const std::exception& e);

// Loads a TorchScript file onto `device`; its "diffsde.json" extra file, when present,
// goes to *metadata (null otherwise). IoError naming the file when it does not load.
torch::jit::Module load_torchscript(const std::string& path, torch::Device device,
                                    nlohmann::json* metadata);

// Saves `module` with `metadata` as the extra file "diffsde.json", atomically.
void save_torchscript(const torch::jit::Module& module, const std::string& path,
                      const nlohmann::json& metadata);

}  // namespace diffsde
