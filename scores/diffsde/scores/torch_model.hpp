// Networks as models: a TorchScript file (or module) predicting eps, x0 or v from
// (x, t) and, for a conditional network, its inputs. This header includes no LibTorch
// header; the implementation lives in the diffsde_torch library (target diffsde::torch),
// the only code that includes torch.
//
// The module's forward takes (x: Tensor (B, *shape), t: Tensor (B,)) and the model's
// declared inputs after them, by name (y: int64 (B,) class labels, emb: (B, 77, 768), ...),
// and returns a tensor of x's shape. Files written by `diffsde train` carry their settings
// in an extra file "diffsde.json" of the archive (shape, time_input, prediction, inputs,
// ...), which fill in whatever the model's config leaves unset.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffsde/model.hpp"
#include "diffsde/parameterization.hpp"
#include "diffsde/registry.hpp"

namespace diffsde {

struct TorchModelOptions {
  std::string path;                  // TorchScript file (for the error messages too)
  std::vector<int> shape;            // per-sample shape; empty: from the file's metadata
  std::string device = "cpu";        // "cpu", "cuda" or "cuda:N"
  std::string dtype = "float32";     // "float32" | "float64": the network's dtype
  std::string time_input;            // "continuous" (t) | "discrete" (t N - 1); "": metadata
  int discrete_steps = 0;            // N for discrete time input; 0: schedule or metadata
  double time_scale = 1.0;           // continuous time input: the network takes t time_scale
  std::string prediction;            // "eps" | "x0" | "v"; "": metadata, else eps
  int max_batch = 0;                 // split larger batches into chunks (0: never)
  int threads = 0;                   // LibTorch intra-op threads (0: leave as is)
  // The inputs forward takes after x and t; empty: the metadata's "inputs", else none.
  std::vector<InputSpec> inputs;
  // One forward on one row of zeros at construction, so that a network that does not run
  // (wrong arguments, wrong output shape) is an error at load rather than at step 0.
  bool dry_run = true;
};

// Model inputs declared in JSON: [{"name": "y", "type": "int64", "shape": [], "classes": 10,
// "null": 10, "optional": false, "description": "..."}, ...] (name and type required; the
// rest optional: a scalar, unchecked labels, no null label, required). ConfigError at
// path (e.g. "model.inputs[0].type") when malformed.
std::vector<InputSpec> input_specs_from_json(const nlohmann::json& value, const std::string& path);

class TorchScriptModel final : public Model {
 public:
  // Loads options.path; IoError naming the file when it does not load, Error naming it when
  // the declared inputs do not fit forward's arguments or the dry run fails; ConfigError-free.
  TorchScriptModel(std::shared_ptr<const Schedule> schedule, TorchModelOptions options);
  ~TorchScriptModel() override;
  TorchScriptModel(const TorchScriptModel&) = delete;
  TorchScriptModel& operator=(const TorchScriptModel&) = delete;

  std::string name() const override { return "torchscript"; }
  int dim() const override;
  std::vector<int> shape() const override;
  std::vector<InputSpec> inputs() const override;
  // Without inputs: Error naming the first required input, if the model has one.
  void eps(const ConstStateRef& x, double t, StateRef out) const override;
  // Row r's inputs are row rows.input_row0 + r of each input, passed to forward by name.
  void eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  void eps_rows_retimed(const ConstStateRef& x, double t, double t_network, const ModelRows& rows,
                        StateRef out) const override;
  // x0, v and velocity networks: their output as x0, exact at alpha = 0 (pure noise).
  bool has_data_prediction() const override;
  void x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const override;
  // J v by automatic differentiation (two reverse passes), in the network's dtype.
  bool has_jvp() const override;
  void eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
               StateRef jvp_out) const override;
  void eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                    StateRef eps_out, StateRef jvp_out) const override;

  // The settings in effect (options merged with the file's metadata).
  const TorchModelOptions& options() const;
  // The file's "diffsde.json" metadata (null when it has none).
  const nlohmann::json& metadata() const;
  // The network's input time for model time t: t time_scale, or t N - 1 for discrete input.
  double network_time(double t) const;
  // Seconds spent inside forward() and evaluations made, for benchmarks.
  double forward_seconds() const;
  long forward_calls() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Makes the "torchscript" model entry of model_registry() work. Defined in
// diffsde_torch; the command line calls it at start-up, applications that link
// diffsde::torch call it once before building models from JSON.
void enable_torch_models();
// True when this LibTorch was built with CUDA and sees a CUDA device (defined in
// diffsde_torch; `diffsde --version` reports it).
bool torch_cuda_available();
// Defined in the core library: the factory behind the "torchscript" entry (empty
// until enable_torch_models() sets it), and whether it is set.
using ModelFactory = std::function<std::unique_ptr<Model>(const Params&, const BuildContext&)>;
void set_torchscript_factory(ModelFactory factory);
bool torch_models_enabled();

}  // namespace diffsde
