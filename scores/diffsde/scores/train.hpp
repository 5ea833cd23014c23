// Training (the seeds' Algorithm 1) and the classifier used for feature-space
// Frechet distances. Torch-free interface; implemented in diffsde_torch.
//
// Diffusion task, one step: x0 from the data, t uniform (continuous in [t_min, t_max],
// or a discrete step n in 0..N-1 of a vp_discrete schedule), eps ~ N(0, I), and a
// gradient step of Adam on mean ||eps - eps_theta(alpha(t) x0 + sigma(t) eps, t)||^2.
// Every draw is keyed by (seed, step, sample), so a run resumed from a checkpoint takes
// exactly the steps of an uninterrupted run.
//
// A class-conditional network (network.classes = K > 0) trains on labelled data: each
// sample's label is fed as input y, replaced by the null label K with probability
// p_uncond, so one network learns both eps(x, t, y) and eps(x, t) for classifier-free
// guidance.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace diffsde {

// The embedded example config (2-D moons, MLP), and the declared top-level keys.
nlohmann::json default_train_config();

struct TrainProgress {
  long step = 0, steps = 0;
  double loss = 0;          // mean loss since the last report
  double samples_per_s = 0;
  double seconds = 0;       // since this run (or resume) started
};
using TrainProgressFn = std::function<void(const TrainProgress&)>;

struct TrainResult {
  long first_step = 0, steps = 0;  // first_step > 0 after a resume
  double loss = 0;                 // mean loss over the last logging interval
  double seconds = 0;
  double samples_per_s = 0;
  long parameters = 0;
  double test_accuracy = -1;       // classifier task with eval data
  std::string model_path, state_path, loss_path;
};

// Trains from `config` (relative paths resolve against base_dir) and writes
//   out_path                 TorchScript module (EMA weights) + diffsde.json metadata
//   out_path + ".state"      raw weights, EMA, Adam state and step, for `resume`
//   <out_path stem>.loss.jsonl  one line per logging interval
// Checkpoints are written atomically every `checkpoint_every` steps and at the end.
// Errors: ConfigError with the JSON path, IoError naming the file.
// `provenance`, when not null, is stored in the model's diffsde.json metadata under
// "provenance" (what produced it: the command line passes the build, config and inputs).
TrainResult train(const nlohmann::json& config, const std::string& base_dir, const std::string& out_path,
                  const TrainProgressFn& progress = {}, const nlohmann::json& provenance = nullptr);

// The labels a conditional network is given at training step `step` for the data labels
// of that step's batch (sample i of it is stream sample step * labels.size() + i): each one
// as it is, or null_label with probability p_uncond, decided by a uniform keyed by
// (seed, step, sample), so a resumed run drops the same labels.
std::vector<std::int64_t> training_labels(const std::vector<int>& labels, std::uint64_t seed, long step,
                                          int null_label, double p_uncond);

// "<stem>.loss.jsonl" for "<stem>.pt" (or "<path>.loss.jsonl").
std::string loss_curve_path(const std::string& model_path);

}  // namespace diffsde
