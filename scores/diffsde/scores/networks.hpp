// Native networks, built as TorchScript modules: their parameters are registered from
// C++ and their methods defined from TorchScript source that this code writes, so one
// object trains in C++, saves with Module::save, and loads in `diffsde sample`, in
// PyTorch (torch.jit.load) and in any LibTorch program. Includes LibTorch.
//
//   mlp:        x (B, d), t (B,) -> eps (B, d). Input layer, `layers` residual blocks
//               with the time embedding added in each, output layer.
//   unet:       x (B, C, H, W), t (B,) -> eps (B, C, H, W). Residual blocks with group
//               norm and the time embedding, strided-conv downsampling, nearest-neighbour
//               upsampling, skip connections by concatenation, self-attention at the
//               resolutions up to `attention_resolution`.
//   classifier: x (B, C, H, W) -> logits (B, classes); method features(x) gives the
//               penultimate activations (B, features), used for Frechet distances.
//
// With `classes` = K > 0 (mlp, unet) the network is class-conditional: forward(x, t, y)
// with y int64 (B,) in 0 .. K, K being the null label ("no class") of classifier-free
// guidance; a learned table of K + 1 rows, as wide as the time embedding, adds the
// label's row to it.
//
// Time enters through a sinusoidal embedding of `time_scale * t` (time_scale 1000 for
// continuous t in [0, 1], 1 for a discrete step index).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/registry.hpp"

namespace diffsde {

// The declared parameters of each network kind ("mlp", "unet", "classifier"), for
// validation, `diffsde list`-style listings and the docs.
const std::vector<ParamSpec>& network_params(const std::string& kind);
std::vector<std::string> network_names();

// Builds network `spec` ({"name": ..., params...}; errors are ConfigErrors under
// `path`) for per-sample `shape`, with parameters initialised from `seed`.
torch::jit::Module make_network(const nlohmann::json& spec, const std::string& path,
                                const std::vector<int>& shape, double time_scale,
                                std::uint64_t seed);

// The `classes` of a noise-prediction network spec (0: unconditional; ConfigError at
// path.classes when negative).
int network_classes(const nlohmann::json& spec, const std::string& path);

// The classifier: `classes` outputs.
torch::jit::Module make_classifier(const nlohmann::json& spec, const std::string& path,
                                   const std::vector<int>& shape, int classes, std::uint64_t seed);

// Number of scalar parameters.
std::int64_t parameter_count(const torch::jit::Module& module);

}  // namespace diffsde
