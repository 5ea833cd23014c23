// Training loop: diffusion (Algorithm 1 of Ho et al. 2020, DDPM) and the feature classifier.
#include <torch/script.h>
#include <ATen/Parallel.h>
#include <torch/optim.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>
// torch first: its logging macros clash with others defined later.

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "diffsde/data.hpp"
#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/networks.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/scores/train.hpp"

namespace diffsde {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr NoiseStream kTimeKey = NoiseStream::train_time;
constexpr NoiseStream kEpsStream = NoiseStream::train_noise;
// Label dropout takes its uniform from the time stream, as draw 1 (t is draw 0): an
// independent draw of the same (seed, sample) key.
constexpr std::uint32_t kLabelDraw = 1;

// Stream sample `i` of training step `step`: the key of that sample's draws.
std::uint64_t sample_key(long step, long batch, long i) {
  return static_cast<std::uint64_t>(step) * static_cast<std::uint64_t>(batch) + static_cast<std::uint64_t>(i);
}

const std::vector<ParamSpec>& train_specs() {
  static const std::vector<ParamSpec> specs = {
      {"task", ParamType::string, "diffusion", "what to train", {"diffusion", "classifier"}},
      {"schedule", ParamType::json, json{{"name", "vp_linear"}}, "the VP schedule (diffusion task)"},
      {"data", ParamType::json, json{{"name", "moons"}}, "the training data ({\"name\": ...})"},
      {"eval_data", ParamType::json, nullptr, "labelled test data for the classifier's accuracy"},
      {"network", ParamType::json, json{{"name", "mlp"}}, "the network ({\"name\": mlp | unet | classifier, ...})"},
      {"steps", ParamType::integer, 2000, "optimiser steps in total (a resumed run goes on to this)"},
      {"batch", ParamType::integer, 256, "samples per step"},
      {"lr", ParamType::number, 1e-3, "Adam learning rate"},
      {"warmup", ParamType::integer, 0, "steps of linear learning-rate warm-up"},
      {"grad_clip", ParamType::number, 1.0, "clip the gradient norm to this (0: no clipping)"},
      {"ema", ParamType::number, 0.999, "EMA decay of the weights saved for sampling (0: no EMA)"},
      {"time", ParamType::string, nullptr,
       "continuous t or discrete steps; unset: discrete on vp_discrete, else continuous",
       {"continuous", "discrete"}},
      {"t_min", ParamType::number, 1e-3, "continuous t is uniform on [t_min, t_max of the schedule]"},
      {"p_uncond", ParamType::number, 0.1,
       "conditional networks: probability that a sample's label is replaced by the null label"},
      {"seed", ParamType::integer, 0, "seeds the initial weights and every training draw"},
      {"log_every", ParamType::integer, 50, "steps per line of the loss curve"},
      {"checkpoint_every", ParamType::integer, 0, "steps between checkpoints (0: only at the end)"},
      {"threads", ParamType::integer, 0, "LibTorch intra-op threads (0: LibTorch's default)"},
      {"resume", ParamType::string, nullptr, "checkpoint (.pt with its .state) to continue from"},
  };
  return specs;
}

std::string stem_of(const std::string& path) {
  const std::string suffix = ".pt";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
    return path.substr(0, path.size() - suffix.size());
  return path;
}

torch::Tensor to_tensor(const State& x, const std::vector<int>& shape) {
  std::vector<int64_t> sizes{x.rows()};
  for (int s : shape) sizes.push_back(s);
  return torch::from_blob(const_cast<double*>(x.data()), sizes, torch::kFloat64).to(torch::kFloat32);
}

std::vector<torch::Tensor> parameters_of(const torch::jit::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p);
  return out;
}

// Everything the loop needs, built from the validated config.
struct Setup {
  std::string task;
  std::shared_ptr<Schedule> schedule;
  std::unique_ptr<DataSource> data, eval_data;
  json network_spec, schedule_spec, data_spec;
  long steps = 0, batch = 0, warmup = 0, log_every = 0, checkpoint_every = 0;
  double lr = 0, grad_clip = 0, ema = 0, t_min = 0, time_scale = 1000.0;
  int classes = 0;  // > 0: a class-conditional network, input y with null label `classes`
  double p_uncond = 0;
  bool discrete = false;
  int discrete_steps = 0;
  std::uint64_t seed = 0;
  std::string resume;
};

Setup parse(const json& config, const std::string& base_dir) {
  if (!config.is_object()) throw ConfigError("", "the training config must be a JSON object");
  const Params p(config, train_specs(), "");
  Setup s;
  s.task = p.string("task");
  BuildContext ctx;
  ctx.base_dir = base_dir;
  s.steps = p.integer("steps");
  if (s.steps < 1) p.fail("steps", "must be >= 1");
  s.batch = p.integer("batch");
  if (s.batch < 1) p.fail("batch", "must be >= 1");
  s.lr = p.number("lr");
  if (!(s.lr > 0)) p.fail("lr", "must be > 0");
  s.warmup = p.integer("warmup");
  if (s.warmup < 0) p.fail("warmup", "must be >= 0");
  s.grad_clip = p.number("grad_clip");
  if (!(s.grad_clip >= 0)) p.fail("grad_clip", "must be >= 0");
  s.ema = p.number("ema");
  if (!(s.ema >= 0 && s.ema < 1)) p.fail("ema", "must be in [0, 1)");
  s.log_every = p.integer("log_every");
  if (s.log_every < 1) p.fail("log_every", "must be >= 1");
  s.checkpoint_every = p.integer("checkpoint_every");
  if (s.checkpoint_every < 0) p.fail("checkpoint_every", "must be >= 0");
  if (p.integer("seed") < 0) p.fail("seed", "must be >= 0");
  s.seed = static_cast<std::uint64_t>(p.integer("seed"));
  if (p.integer("threads") < 0) p.fail("threads", "must be >= 0");
  if (p.integer("threads") > 0) at::set_num_threads(static_cast<int>(p.integer("threads")));
  if (p.has("resume")) s.resume = resolve_path(base_dir, p.string("resume"));

  s.schedule_spec = p.value("schedule");
  s.schedule = schedule_registry().create(s.schedule_spec, "schedule", ctx);
  if (!s.schedule->variance_preserving())
    p.fail("schedule", "training is written for variance-preserving schedules; " + s.schedule->name() +
                           " is not supported yet");
  s.data_spec = p.value("data");
  ctx.schedule = s.schedule;
  s.data = data_registry().create(s.data_spec, "data", ctx);
  if (p.has("eval_data")) s.eval_data = data_registry().create(p.value("eval_data"), "eval_data", ctx);
  s.network_spec = p.value("network");

  const auto* discrete = dynamic_cast<const VpDiscreteSchedule*>(s.schedule.get());
  const std::string time = p.has("time") ? p.string("time") : (discrete ? "discrete" : "continuous");
  s.discrete = time == "discrete";
  if (s.discrete && !discrete) p.fail("time", "discrete time needs a vp_discrete schedule");
  if (s.discrete) s.discrete_steps = discrete->num_steps();
  s.time_scale = s.discrete ? 1.0 : 1000.0;
  s.t_min = p.number("t_min");
  if (!(s.t_min > 0 && s.t_min < s.schedule->t_max())) p.fail("t_min", "must be in (0, t_max of the schedule)");

  s.p_uncond = p.number("p_uncond");
  if (!(s.p_uncond >= 0 && s.p_uncond <= 1)) p.fail("p_uncond", "must be in [0, 1]");
  if (s.task == "diffusion") {
    s.classes = network_classes(s.network_spec, "network");
    const int have = s.data->num_classes();
    if (s.classes > 0 && have == 0)
      throw ConfigError("network.classes", "a conditional network needs labelled data, and data '" +
                                               s.data->name() +
                                               "' has no labels (labelled: moons, 8gaussians, gmm, "
                                               "fashion_mnist, npy with `labels`)");
    if (s.classes > 0 && have > s.classes)
      throw ConfigError("network.classes", "data '" + s.data->name() + "' has labels 0 .. " +
                                               std::to_string(have - 1) + ", beyond classes = " +
                                               std::to_string(s.classes) + " (labels 0 .. " +
                                               std::to_string(s.classes - 1) + ")");
  }
  if (s.task == "classifier") {
    if (s.data->num_classes() < 2) p.fail("data", "the classifier needs labelled data (e.g. fashion_mnist)");
    if (s.eval_data && s.eval_data->num_classes() < 1) p.fail("eval_data", "must be labelled");
  }
  return s;
}

// The checkpoint's metadata: what `sample` needs to use the network, and the recipe.
json metadata_of(const Setup& s, long step, double loss, std::int64_t params) {
  json m = {{"format", "diffsde-network"}, {"version", 1}, {"task", s.task},
            {"shape", s.data->shape()}, {"network", s.network_spec}, {"data", s.data_spec},
            {"step", step}, {"loss", loss}, {"parameters", params}, {"ema", s.ema}, {"seed", s.seed}};
  if (s.task == "diffusion") {
    m["prediction"] = "eps";
    m["time_input"] = s.discrete ? "discrete" : "continuous";
    if (s.discrete) m["discrete_steps"] = s.discrete_steps;
    m["time_scale"] = s.time_scale;
    m["schedule"] = s.schedule_spec;
    if (s.classes > 0) {
      // The extra forward argument, as TorchScript models declare theirs.
      m["inputs"] = json::array(
          {{{"name", "y"}, {"type", "int64"}, {"shape", json::array()}, {"classes", s.classes}, {"null", s.classes}}});
      m["p_uncond"] = s.p_uncond;
    }
  } else {
    m["classes"] = s.data->num_classes();
  }
  return m;
}

void save_state(const std::string& path, const std::vector<torch::Tensor>& params,
                const std::vector<torch::Tensor>& ema, torch::optim::Adam& optimizer, long step) {
  torch::serialize::OutputArchive archive;
  for (std::size_t i = 0; i < params.size(); ++i) {
    archive.write("param/" + std::to_string(i), params[i].detach());
    archive.write("ema/" + std::to_string(i), ema[i]);
  }
  archive.write("step", torch::tensor(static_cast<int64_t>(step)));
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  archive.write("optimizer", opt);
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    std::remove(tmp.c_str());
    throw IoError(path, "cannot save the training state: " + torch_error_message(e));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IoError(path, "cannot rename the temporary file into place: " + ec.message());
}

long load_state(const std::string& path, std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& ema,
                torch::optim::Adam& optimizer) {
  if (!std::filesystem::exists(path))
    throw IoError(path, "training state not found (a checkpoint is the .pt file and its .state beside it)");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      torch::Tensor p, e;
      archive.read("param/" + std::to_string(i), p);
      archive.read("ema/" + std::to_string(i), e);
      if (p.sizes() != params[i].sizes())
        throw IoError(path, "parameter " + std::to_string(i) + " has another shape than the configured network's");
      params[i].copy_(p);
      ema[i].copy_(e);
    }
    torch::Tensor step;
    archive.read("step", step);
    torch::serialize::InputArchive opt;
    archive.read("optimizer", opt);
    optimizer.load(opt);
    return step.item<int64_t>();
  } catch (const c10::Error& e) {
    throw IoError(path, "cannot read the training state: " + torch_error_message(e));
  }
}

// Saves the module with the EMA weights in place of the raw ones.
void save_checkpoint(torch::jit::Module& module, std::vector<torch::Tensor>& params,
                     const std::vector<torch::Tensor>& ema, const std::string& path, const json& meta) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> raw;
  for (std::size_t i = 0; i < params.size(); ++i) {
    raw.push_back(params[i].detach().clone());
    params[i].copy_(ema[i]);
  }
  try {
    save_torchscript(module, path, meta);
  } catch (...) {
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(raw[i]);
    throw;
  }
  for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(raw[i]);
}

// Keeps the loss lines of steps <= step (a resumed run rewrites what followed).
void truncate_loss_curve(const std::string& path, long step) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      const json j = json::parse(line);
      if (j.at("step").get<long>() <= step) kept += line + "\n";
    } catch (const std::exception&) {
      break;  // a torn last line
    }
  }
  write_file_atomic(path, kept);
}

double accuracy(torch::jit::Module& module, const DataSource& data) {
  const State* rows = data.rows();
  const auto* labels = data.row_labels();
  if (!rows || !labels) throw Error("the evaluation data must be a labelled dataset");
  torch::NoGradGuard no_grad;
  long correct = 0;
  const Eigen::Index chunk = 500;
  for (Eigen::Index r0 = 0; r0 < rows->rows(); r0 += chunk) {
    const Eigen::Index n = std::min(chunk, rows->rows() - r0);
    const State block = rows->middleRows(r0, n);
    const auto logits = module.forward({to_tensor(block, data.shape())}).toTensor();
    const auto pred = logits.argmax(1);
    for (Eigen::Index i = 0; i < n; ++i)
      correct += pred[i].item<int64_t>() == (*labels)[static_cast<std::size_t>(r0 + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(rows->rows());
}

}  // namespace

std::vector<std::int64_t> training_labels(const std::vector<int>& labels, std::uint64_t seed, long step,
                                          int null_label, double p_uncond) {
  const long batch = static_cast<long>(labels.size());
  std::vector<std::int64_t> out(labels.begin(), labels.end());
  for (long i = 0; i < batch; ++i) {
    double u;  // in [0, 1): p_uncond 0 keeps every label, 1 drops every one
    philox_uniforms(seed, kTimeKey, sample_key(step, batch, i), kLabelDraw, &u, 1);
    if (u < p_uncond) out[static_cast<std::size_t>(i)] = null_label;
  }
  return out;
}

json default_train_config() {
  return json::parse(R"({
    "schedule": {"name": "vp_linear"},
    "data": {"name": "moons"},
    "network": {"name": "mlp", "hidden": 128, "layers": 2},
    "steps": 2000, "batch": 256, "lr": 2e-3, "ema": 0.995, "seed": 0
  })");
}

std::string loss_curve_path(const std::string& model_path) { return stem_of(model_path) + ".loss.jsonl"; }

TrainResult train(const json& config, const std::string& base_dir, const std::string& out_path,
                  const TrainProgressFn& progress, const json& provenance) {
  Setup s = parse(config, base_dir);
  use_reproducible_torchscript();
  const bool classify = s.task == "classifier";
  torch::jit::Module module;
  try {
    module = classify ? make_classifier(s.network_spec, "network", s.data->shape(), s.data->num_classes(), s.seed)
                      : make_network(s.network_spec, "network", s.data->shape(), s.time_scale, s.seed);
  } catch (const c10::Error& e) {
    throw ConfigError("network", "cannot build the network: " + torch_error_message(e));
  }
  module.train();
  std::vector<torch::Tensor> params = parameters_of(module);
  std::vector<torch::Tensor> ema;
  for (const auto& p : params) ema.push_back(p.detach().clone());
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(s.lr));

  TrainResult result;
  result.model_path = out_path;
  result.state_path = out_path + ".state";
  result.loss_path = loss_curve_path(out_path);
  result.parameters = parameter_count(module);

  long step = 0;
  if (!s.resume.empty()) {
    json meta;
    load_torchscript(s.resume, torch::kCPU, &meta);
    if (!meta.is_object() || meta.value("format", "") != "diffsde-network")
      throw ConfigError("resume", "'" + s.resume + "' was not written by diffsde train (no diffsde.json metadata)");
    for (const char* key : {"network", "task"})
      if (meta.contains(key) && meta[key] != (std::string(key) == "task" ? json(s.task) : s.network_spec))
        throw ConfigError("resume", std::string("the checkpoint's ") + key + " " + meta[key].dump() +
                                        " differs from this config's");
    step = load_state(s.resume + ".state", params, ema, optimizer);
    if (step > s.steps)
      throw ConfigError("steps", "the checkpoint is at step " + std::to_string(step) + ", past steps = " +
                                     std::to_string(s.steps));
  }
  result.first_step = step;
  if (step == 0) {
    write_file_atomic(result.loss_path, "");
  } else {
    if (result.loss_path != loss_curve_path(s.resume) && std::filesystem::exists(loss_curve_path(s.resume)))
      write_file_atomic(result.loss_path, read_file(loss_curve_path(s.resume)));
    truncate_loss_curve(result.loss_path, step);
  }

  const bool conditional = s.classes > 0;
  const int d = s.data->dim();
  State x0(s.batch, d), eps(s.batch, d), xt(s.batch, d);
  std::vector<double> t_net(static_cast<std::size_t>(s.batch));
  std::vector<int> labels;
  const double t_max = s.schedule->t_max();
  const auto* discrete = dynamic_cast<const VpDiscreteSchedule*>(s.schedule.get());

  const auto start = Clock::now();
  auto interval_start = start;
  double interval_loss = 0;
  long interval_steps = 0;
  double last_loss = std::nan("");
  std::ofstream loss_file(result.loss_path, std::ios::app);
  if (!loss_file) throw IoError(result.loss_path, "cannot open for appending");

  while (step < s.steps) {
    s.data->batch(s.seed, static_cast<std::uint64_t>(step), x0, classify || conditional ? &labels : nullptr);
    torch::Tensor loss;
    if (classify) {
      const auto logits = module.forward({to_tensor(x0, s.data->shape())}).toTensor();
      std::vector<int64_t> y(labels.begin(), labels.end());
      loss = torch::nll_loss(torch::log_softmax(logits, 1), torch::tensor(y));
    } else {
      for (long i = 0; i < s.batch; ++i) {
        const std::uint64_t sample = sample_key(step, s.batch, i);
        double u;
        philox_uniforms(s.seed, kTimeKey, sample, 0, &u, 1);
        double log_ab;
        if (s.discrete) {
          const int n = std::min(static_cast<int>(u * s.discrete_steps), s.discrete_steps - 1);
          log_ab = discrete->log_alpha_bars()[static_cast<std::size_t>(n)];
          t_net[static_cast<std::size_t>(i)] = n;
        } else {
          const double t = s.t_min + (t_max - s.t_min) * u;
          log_ab = s.schedule->log_alpha_bar(t);
          t_net[static_cast<std::size_t>(i)] = t;
        }
        philox_normals(s.seed, kEpsStream, sample, 0, &eps(i, 0), d);
        const double alpha = std::exp(0.5 * log_ab), sigma = std::sqrt(-std::expm1(log_ab));
        xt.row(i) = alpha * x0.row(i) + sigma * eps.row(i);
      }
      const torch::Tensor tt = torch::from_blob(t_net.data(), {s.batch}, torch::kFloat64).to(torch::kFloat32);
      std::vector<torch::jit::IValue> args{to_tensor(xt, s.data->shape()), tt};
      if (conditional) {
        for (int y : labels)
          if (y < 0 || y >= s.classes)
            throw ConfigError("network.classes", "data label " + std::to_string(y) + " is outside 0 .. " +
                                                     std::to_string(s.classes - 1));
        args.emplace_back(torch::tensor(training_labels(labels, s.seed, step, s.classes, s.p_uncond), torch::kInt64));
      }
      const auto pred = module.forward(args).toTensor();
      loss = (pred - to_tensor(eps, s.data->shape())).pow(2).mean();
    }
    optimizer.zero_grad();
    loss.backward();
    if (s.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, s.grad_clip);
    const double lr = s.warmup > 0 ? s.lr * std::min(1.0, static_cast<double>(step + 1) / s.warmup) : s.lr;
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    optimizer.step();
    if (s.ema > 0) {
      // Warm-up: decay min(ema, (1 + k) / (10 + k)) at step k, so that the average is not
      // dominated by the initial weights early on (0.999^1000 would still leave 37 % of them).
      const double decay = std::min(s.ema, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) ema[i].mul_(decay).add_(params[i].detach(), 1.0 - decay);
    } else {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) ema[i].copy_(params[i].detach());
    }
    const double value = loss.item<double>();
    if (!std::isfinite(value))
      throw NumericalError(step, std::nan(""), "training loss is " + format_double(value) +
                                                                    " (lower `lr` or keep `grad_clip`)");
    interval_loss += value;
    ++interval_steps;
    ++step;

    const bool log_now = step % s.log_every == 0 || step == s.steps;
    if (log_now) {
      const auto now = Clock::now();
      const double secs = std::chrono::duration<double>(now - interval_start).count();
      last_loss = interval_loss / static_cast<double>(interval_steps);
      TrainProgress pr;
      pr.step = step;
      pr.steps = s.steps;
      pr.loss = last_loss;
      pr.samples_per_s = static_cast<double>(interval_steps * s.batch) / std::max(secs, 1e-9);
      pr.seconds = std::chrono::duration<double>(now - start).count();
      json line = {{"step", step}, {"loss", last_loss}, {"samples_per_s", pr.samples_per_s},
                   {"seconds", pr.seconds}, {"lr", lr}};
      loss_file << line.dump() << "\n" << std::flush;
      if (progress) progress(pr);
      interval_loss = 0;
      interval_steps = 0;
      interval_start = now;
    }
    if ((s.checkpoint_every > 0 && step % s.checkpoint_every == 0) || step == s.steps) {
      json meta = metadata_of(s, step, last_loss, result.parameters);
      if (!provenance.is_null()) meta["provenance"] = provenance;
      // The state goes first: a checkpoint .pt always has a .state at least as new.
      save_state(result.state_path, params, ema, optimizer, step);
      if (classify && s.eval_data && step == s.steps) {
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> raw;
        for (std::size_t i = 0; i < params.size(); ++i) {
          raw.push_back(params[i].detach().clone());
          params[i].copy_(ema[i]);
        }
        result.test_accuracy = accuracy(module, *s.eval_data);
        for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(raw[i]);
        meta["test_accuracy"] = result.test_accuracy;
      }
      save_checkpoint(module, params, ema, out_path, meta);
    }
  }
  result.steps = step;
  result.loss = last_loss;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.samples_per_s = static_cast<double>((step - result.first_step) * s.batch) / std::max(result.seconds, 1e-9);
  return result;
}

}  // namespace diffsde
