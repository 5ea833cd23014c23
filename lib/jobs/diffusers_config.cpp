// diffusers' scheduler configs as native configs (diffusers_config.hpp, docs/interop.md).
#include "diffsde/diffusers_config.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "diffsde/error.hpp"
#include "diffsde/grid.hpp"
#include "diffsde/io.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/solvers/dpm_solver.hpp"

namespace diffsde {

using nlohmann::json;

namespace {

// The keys of each class's constructor that the translation reads (diffusers' names).
const std::vector<std::string> kBetaKeys = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                            "trained_betas", "rescale_betas_zero_snr", "prediction_type",
                                            "timestep_spacing", "steps_offset"};
// The same for the classes without zero-terminal-SNR rescaling (DEIS and the k-diffusion
// ports: Heun, KDPM2, KDPM2Ancestral, LMS).
const std::vector<std::string> kKarrasBetaKeys = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                                  "trained_betas", "prediction_type", "timestep_spacing",
                                                  "steps_offset"};
const std::vector<std::string> kEdmKeys = {"sigma_min", "sigma_max", "sigma_data", "sigma_schedule",
                                           "num_train_timesteps", "prediction_type", "rho", "final_sigmas_type"};
const std::vector<std::string> kMetaKeys = {"_class_name", "_diffusers_version", "_use_default_values"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::map<std::string, std::vector<std::string>>& class_keys() {
  static const std::map<std::string, std::vector<std::string>> keys = {
      {"DDIMScheduler", kBetaKeys + std::vector<std::string>{"clip_sample", "clip_sample_range", "set_alpha_to_one",
                                                             "thresholding", "dynamic_thresholding_ratio",
                                                             "sample_max_value"}},
      {"DDPMScheduler", kBetaKeys + std::vector<std::string>{"variance_type", "clip_sample", "clip_sample_range",
                                                             "thresholding", "dynamic_thresholding_ratio",
                                                             "sample_max_value"}},
      {"DPMSolverMultistepScheduler",
       kBetaKeys + std::vector<std::string>{"solver_order", "thresholding", "dynamic_thresholding_ratio",
                                            "sample_max_value", "algorithm_type", "solver_type", "lower_order_final",
                                            "euler_at_final", "use_karras_sigmas", "use_exponential_sigmas",
                                            "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "flow_shift",
                                            "final_sigmas_type", "lambda_min_clipped", "variance_type"}},
      {"DPMSolverSinglestepScheduler",
       std::vector<std::string>{"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                                "prediction_type", "solver_order", "thresholding", "dynamic_thresholding_ratio",
                                            "sample_max_value", "algorithm_type", "solver_type", "lower_order_final",
                                            "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                            "use_flow_sigmas", "flow_shift", "final_sigmas_type",
                                            "lambda_min_clipped", "variance_type", "use_dynamic_shifting",
                                            "time_shift_type"}},
      {"EulerDiscreteScheduler",
       kBetaKeys + std::vector<std::string>{"interpolation_type", "use_karras_sigmas", "use_exponential_sigmas",
                                            "use_beta_sigmas", "sigma_min", "sigma_max", "timestep_type",
                                            "final_sigmas_type"}},
      {"EulerAncestralDiscreteScheduler", kBetaKeys},
      {"DEISMultistepScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"solver_order", "thresholding", "dynamic_thresholding_ratio",
                                                  "sample_max_value", "algorithm_type", "solver_type",
                                                  "lower_order_final", "use_karras_sigmas",
                                                  "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas",
                                                  "flow_shift"}},
      {"HeunDiscreteScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                                  "clip_sample", "clip_sample_range"}},
      {"DPMSolverSDEScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                                  "noise_sampler_seed"}},
      {"LCMScheduler",
       kBetaKeys + std::vector<std::string>{"original_inference_steps", "clip_sample", "clip_sample_range",
                                            "set_alpha_to_one", "thresholding", "dynamic_thresholding_ratio",
                                            "sample_max_value", "timestep_scaling"}},
      {"KDPM2DiscreteScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"}},
      {"KDPM2AncestralDiscreteScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"}},
      {"LMSDiscreteScheduler",
       kKarrasBetaKeys + std::vector<std::string>{"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"}},
      {"PNDMScheduler", kBetaKeys + std::vector<std::string>{"skip_prk_steps", "set_alpha_to_one"}},
      {"EDMEulerScheduler", kEdmKeys},
      {"FlowMatchEulerDiscreteScheduler",
       std::vector<std::string>{"num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift", "max_shift",
                                "base_image_seq_len", "max_image_seq_len", "invert_sigmas", "shift_terminal",
                                "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "time_shift_type",
                                "stochastic_sampling"}},
      {"EDMDPMSolverMultistepScheduler",
       kEdmKeys + std::vector<std::string>{"solver_order", "thresholding", "dynamic_thresholding_ratio",
                                           "sample_max_value", "algorithm_type", "solver_type", "lower_order_final",
                                           "euler_at_final"}},
      {"UniPCMultistepScheduler",
       kBetaKeys + std::vector<std::string>{"solver_order", "thresholding", "dynamic_thresholding_ratio",
                                            "sample_max_value", "predict_x0", "solver_type", "lower_order_final",
                                            "disable_corrector", "solver_p", "use_karras_sigmas",
                                            "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas",
                                            "flow_shift", "final_sigmas_type"}},
  };
  return keys;
}

// diffusers' constructor defaults that differ between classes.
json class_default(const std::string& cls, const std::string& key) {
  if (key == "clip_sample") return cls == "DDIMScheduler" || cls == "DDPMScheduler";
  if (key == "set_alpha_to_one") return cls != "PNDMScheduler";
  if (key == "variance_type") return cls == "DDPMScheduler" ? json("fixed_small") : json(nullptr);
  if (key == "final_sigmas_type") return "zero";
  // DDIM, DDPM and PNDM space their timesteps "leading" unless told otherwise (Stable
  // Diffusion 1.x's files do not say); the others "linspace".
  if (key == "timestep_spacing")
    return cls == "DDIMScheduler" || cls == "DDPMScheduler" || cls == "PNDMScheduler" || cls == "LCMScheduler"
               ? "leading"
               : "linspace";
  if (key == "lower_order_final") return cls != "DPMSolverSinglestepScheduler";
  // The k-diffusion ports default to Stable Diffusion's betas' range.
  const bool sd_range = cls == "HeunDiscreteScheduler" || cls == "KDPM2DiscreteScheduler" ||
                        cls == "KDPM2AncestralDiscreteScheduler" || cls == "DPMSolverSDEScheduler" ||
                        cls == "LCMScheduler";
  if (key == "beta_schedule") return cls == "LCMScheduler" ? "scaled_linear" : "linear";
  if (key == "beta_start") return sd_range ? 0.00085 : 0.0001;
  if (key == "beta_end") return sd_range ? 0.012 : 0.02;
  return nullptr;
}

class Reader {
 public:
  Reader(const json& config, std::string path, std::string cls) : c_(config), path_(std::move(path)), cls_(std::move(cls)) {}
  bool has(const std::string& key) const { return c_.contains(key) && !c_.at(key).is_null(); }
  std::string at(const std::string& key) const { return join_path(path_, key); }
  [[noreturn]] void fail(const std::string& key, const std::string& message) const { throw ConfigError(at(key), message); }
  json get(const std::string& key) const { return has(key) ? c_.at(key) : class_default(cls_, key); }
  bool boolean(const std::string& key, bool fallback) const {
    const json v = get(key);
    if (v.is_null()) return fallback;
    if (!v.is_boolean()) fail(key, "expected true or false, got " + json_type_name(v));
    return v.get<bool>();
  }
  double number(const std::string& key, double fallback) const {
    const json v = get(key);
    if (v.is_null()) return fallback;
    if (!v.is_number()) fail(key, "expected a number, got " + json_type_name(v));
    return v.get<double>();
  }
  long integer(const std::string& key, long fallback) const {
    const double v = number(key, static_cast<double>(fallback));
    if (v != std::floor(v) || std::abs(v) > 1e15) fail(key, "expected an integer, got " + format_double(v));
    return static_cast<long>(v);
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const json v = get(key);
    if (v.is_null()) return fallback;
    if (!v.is_string()) fail(key, "expected a string, got " + json_type_name(v));
    return v.get<std::string>();
  }
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& honoured,
                     const std::string& why) const {
    const std::string v = string(key, fallback);
    if (std::find(honoured.begin(), honoured.end(), v) == honoured.end())
      fail(key, "'" + v + "' is not supported here (" + why + ")");
    return v;
  }
  // A key whose only honoured value is `value` (diffusers' default where it says so).
  void require(const std::string& key, const json& value, const std::string& why) const {
    if (!has(key)) return;
    const json v = get(key);
    if (v != value) fail(key, v.dump() + " is not supported: " + why);
  }

 private:
  const json& c_;
  std::string path_, cls_;
};

// Each step's order as diffusers' multistep step() chooses it (DPMSolverMultistep, DEIS):
// the history's warm-up; first order at the last step when `final_first_order` or, below 15
// steps, with lower_order_final; at most second order at the step before it below 15 steps
// with lower_order_final.
json multistep_orders(long steps, long order, bool lower_order_final, bool final_first_order) {
  json orders = json::array();
  long history = 0;
  for (long i = 0; i < steps; ++i) {
    const bool final_low = i == steps - 1 && (final_first_order || (lower_order_final && steps < 15));
    const bool second_low = i == steps - 2 && lower_order_final && steps < 15;
    long o = 3;
    if (order == 1 || history < 1 || final_low)
      o = 1;
    else if (order == 2 || history < 2 || second_low)
      o = 2;
    orders.push_back(o);
    history = std::min(history + 1, order);
  }
  return orders;
}

constexpr double kTwoPowMinus24 = 5.9604644775390625e-08;  // 2^-24

// The translation's thresholding, and the network's prediction and discrete time input (a
// TorchScript model takes them as parameters; any other model predicts eps), into the
// config or problem section `out` at JSON path `path`.
void apply_model_settings(const SchedulerTranslation& t, const std::string& path, json& out) {
  if (!t.thresholding.is_null() && !out.contains("thresholding")) out["thresholding"] = t.thresholding;
  if (!out.contains("model")) return;
  json& m = out["model"];
  const bool network = m.is_object() && m.value("name", "") == "torchscript";
  if (network) {
    if (m.contains("prediction") && m.at("prediction") != t.prediction)
      throw ConfigError(join_path(path, "model.prediction"), "is " + m.at("prediction").dump() +
                                                                 " but the scheduler config's prediction_type means \"" +
                                                                 t.prediction + "\"");
    m["prediction"] = t.prediction;
    if (t.network.is_object()) {
      for (const auto& [key, value] : t.network.items()) {
        if (m.contains(key) && m.at(key) != value)
          throw ConfigError(join_path(path, "model." + key), "is " + m.at(key).dump() + " but the scheduler config "
                                                             "means " + value.dump());
        m[key] = value;
      }
    } else if (!m.contains("time_input")) {
      m["time_input"] = "discrete";
    }
  } else if (t.prediction != "eps" && t.prediction_given) {
    throw ConfigError(join_path(path, "scheduler_config.prediction_type"),
                      "the model predicts eps; prediction_type " + t.prediction + " applies to network models");
  }
}

// diffusers' EDM classes (EDMEulerScheduler, EDMDPMSolverMultistepScheduler): the edm
// schedule (alpha = 1, sigma = t), the Karras sigmas (ramp linspace(0, 1, steps), then a
// final sigma of 0 or sigma_min) or the exponential ones (uniform in log sigma, which is
// lambda on edm), EDM's preconditioning of the network, and Euler or DPM-Solver++
// multistep on them.
void translate_edm(const Reader& r, const std::string& cls, long steps, SchedulerTranslation& out) {
  const double sigma_min = r.number("sigma_min", 0.002), sigma_max = r.number("sigma_max", 80.0);
  if (!(sigma_min > 0) || !std::isfinite(sigma_min)) r.fail("sigma_min", "must be finite and > 0");
  if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max))
    r.fail("sigma_max", "must be finite and > sigma_min = " + format_double(sigma_min));
  const double sigma_data = r.number("sigma_data", 0.5);
  if (!(sigma_data > 0) || !std::isfinite(sigma_data)) r.fail("sigma_data", "must be finite and > 0");
  const double rho = r.number("rho", 7.0);
  if (!(rho > 0) || !std::isfinite(rho)) r.fail("rho", "must be finite and > 0");
  if (r.integer("num_train_timesteps", 1000) < 1) r.fail("num_train_timesteps", "must be >= 1");
  const std::string rule = r.choice("sigma_schedule", "karras", {"karras", "exponential"}, "known: karras, exponential");
  const std::string final_type = r.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}, "known: zero, sigma_min");
  // EDM's "epsilon" is its network output F as it is, "v_prediction" F with c_out negated.
  const std::string prediction = r.choice("prediction_type", "epsilon", {"epsilon", "v_prediction"},
                                          "diffusers' EDM classes take epsilon or v_prediction");
  out.prediction = prediction == "epsilon" ? "eps" : "v";
  out.prediction_given = r.has("prediction_type");
  out.network = {{"preconditioning", "edm"}, {"sigma_data", sigma_data}};

  out.schedule = {{"name", "edm"}, {"sigma_min", sigma_min}, {"sigma_max", sigma_max}};
  // diffusers' steps sigmas, then the final one. To 0: the rule's steps - 1 intervals down
  // to sigma_min (t_last), then a step to 0. To sigma_min: that final step has length zero
  // and changes nothing, so the grid ends at sigma_min.
  json& grid = out.grid;
  grid = {{"name", rule == "karras" ? "karras" : "logSNR"}, {"t_start", sigma_max}};
  if (rule == "karras") grid["rho"] = rho;
  if (final_type == "zero") {
    grid["t_end"] = 0.0;
    grid["t_last"] = sigma_min;
    grid["steps"] = steps;
  } else {
    if (steps < 2)
      throw ConfigError("steps", "must be >= 2 with final_sigmas_type sigma_min (one step from sigma_max to sigma_min)");
    grid["t_end"] = sigma_min;
    grid["steps"] = steps - 1;
  }

  if (cls == "EDMEulerScheduler") {
    out.solver = {{"name", "euler"}};
    return;
  }
  const long order = r.integer("solver_order", 2);
  if (order < 1 || order > 3) r.fail("solver_order", "must be 1, 2 or 3");
  // diffusers reads algorithm_type deis as dpmsolver++, and solver_type logrho, bh1 and bh2
  // as midpoint.
  std::string algorithm = r.choice("algorithm_type", "dpmsolver++", {"dpmsolver++", "sde-dpmsolver++", "deis"},
                                   "known: dpmsolver++, sde-dpmsolver++ (deis is read as dpmsolver++)");
  if (algorithm == "deis") algorithm = "dpmsolver++";
  std::string solver_type = r.choice("solver_type", "midpoint", {"midpoint", "heun", "logrho", "bh1", "bh2"},
                                     "known: midpoint, heun (logrho, bh1, bh2 are read as midpoint)");
  if (solver_type != "heun") solver_type = "midpoint";
  const bool sde = algorithm == "sde-dpmsolver++";
  if (sde && order == 3) r.fail("solver_order", "diffusers' third-order update has no sde-dpmsolver++ form; use 1 or 2");
  if (solver_type == "heun" && order == 3)
    r.fail("solver_type", "heun at solver_order 3 is not translated yet; use midpoint, or solver_order 2");
  // Each step's order as diffusers' step() chooses it; the final step is first order when it
  // goes to sigma 0. A final step of length zero (sigma_min) is left out, and its entry too.
  const bool lower_order_final = r.boolean("lower_order_final", true);
  const bool euler_at_final = r.boolean("euler_at_final", false);
  json orders = multistep_orders(steps, order, lower_order_final, euler_at_final || final_type == "zero");
  if (final_type == "sigma_min") orders.erase(orders.size() - 1);
  if (sde || solver_type == "heun") {
    out.solver = {{"name", "dpmpp_2m_sde"}, {"eta", sde ? 1.0 : 0.0}, {"solver_type", solver_type},
                  {"orders", orders}};
  } else {
    out.solver = {{"name", "dpm_solver"}, {"order", order}, {"method", "multistep"}, {"algorithm", "dpmsolver++"},
                  {"orders", orders}};
    if (order == 3) out.solver["coefficients"] = "published";
  }
  if (r.boolean("thresholding", false))
    out.thresholding = {{"ratio", r.number("dynamic_thresholding_ratio", 0.995)},
                        {"max", r.number("sample_max_value", 1.0)}};
}

// diffusers' FlowMatchEulerDiscreteScheduler (SD3, Flux): the flow schedule (alpha = 1 -
// sigma, sigma = t), its sigmas as the shift grid (set_timesteps: u = linspace(1, u_last,
// steps), t = shift(u), then 0; u_last is the last training sigma, shifted once already
// unless the shift is dynamic), the velocity network at t num_train_timesteps, and ddim,
// which is rectified flow's Euler step x + (sigma_next - sigma) velocity, from pure noise.
void translate_flow_match(const Reader& r, long steps, double mu, SchedulerTranslation& out) {
  const long n_train = r.integer("num_train_timesteps", 1000);
  if (n_train < 2) r.fail("num_train_timesteps", "must be >= 2");
  const double shift = r.number("shift", 1.0);
  if (!(shift > 0) || !std::isfinite(shift)) r.fail("shift", "must be finite and > 0");
  // The pipeline computes mu from these and the image size; the scheduler does not read them.
  for (const char* key : {"base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len"}) r.number(key, 0);
  for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"})
    r.require(key, false, "sigma rules on flow-matching sigmas are not translated yet");
  r.require("invert_sigmas", false, "inverted sigmas are not translated");
  r.require("shift_terminal", nullptr, "the stretch to a terminal shift is not translated yet");
  r.require("stochastic_sampling", false, "stochastic sampling is not translated yet");
  const std::string type = r.choice("time_shift_type", "exponential", {"exponential", "linear"},
                                    "known: exponential, linear");
  const auto shifted = [](double s, double u) { return s * u / (1 + (s - 1) * u); };
  double s = shift, u_last = shifted(shift, 1.0 / static_cast<double>(n_train));
  if (r.boolean("use_dynamic_shifting", false)) {
    if (std::isnan(mu))
      throw ConfigError("mu", "is required with use_dynamic_shifting: the value diffusers' pipelines pass to "
                              "set_timesteps (Flux computes it from the image's sequence length)");
    // time_shift(mu, 1, u) = e^mu / (e^mu + 1/u - 1) is the shift map with shift e^mu (linear: mu).
    s = type == "exponential" ? std::exp(mu) : mu;
    if (!(s > 0) || !std::isfinite(s)) throw ConfigError("mu", "gives the shift " + format_double(s) + "; it must be > 0");
    u_last = 1.0 / static_cast<double>(n_train);
  } else if (!std::isnan(mu)) {
    throw ConfigError("mu", "applies with use_dynamic_shifting only");
  }
  out.schedule = {{"name", "flow"}};
  out.grid = {{"name", "shift"}, {"shift", s},     {"t_start", 1.0},
              {"t_end", 0.0},    {"steps", steps}, {"t_last", shifted(s, u_last)}};
  out.solver = {{"name", "ddim"}};
  out.prediction = "velocity";
  out.network = {{"time_input", "continuous"}, {"time_scale", static_cast<double>(n_train)}};
}

}  // namespace

namespace {

// The translation of "scheduler_config"'s value `v` (a file's path, relative to base_dir,
// or the object) at JSON path `key`; errors name the file where one was read.
SchedulerTranslation translate_given(const json& v, const std::string& base_dir, const std::string& key, long steps,
                                     const std::string& cls, double mu = std::numeric_limits<double>::quiet_NaN()) {
  json sc;
  std::string file;
  if (v.is_string()) {
    file = resolve_path(base_dir, v.get<std::string>());
    sc = read_json_file(file);
  } else if (v.is_object()) {
    sc = v;
  } else {
    throw ConfigError(key, "expected the path of a scheduler_config.json or the object itself");
  }
  try {
    return translate_scheduler_config(sc, steps, key, cls, mu);
  } catch (const ConfigError& e) {
    if (file.empty()) throw;
    throw ConfigError(e.path(), e.message() + " (in " + file + ")");
  }
}

}  // namespace

const std::vector<std::string>& diffusers_scheduler_classes() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, keys] : class_keys()) v.push_back(name);
    return v;
  }();
  return names;
}

SchedulerTranslation translate_scheduler_config(const json& config, long steps, const std::string& path,
                                                const std::string& class_override, double mu) {
  if (!config.is_object()) throw ConfigError(path, "expected a scheduler config object, got " + json_type_name(config));
  std::string cls = class_override;
  if (cls.empty()) {
    if (!config.contains("_class_name") || !config.at("_class_name").is_string())
      throw ConfigError(join_path(path, "_class_name"), "is required (the diffusers scheduler class)");
    cls = config.at("_class_name").get<std::string>();
  }
  const auto& classes = class_keys();
  const auto found = classes.find(cls);
  if (found == classes.end()) {
    const auto& known = diffusers_scheduler_classes();
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(class_override.empty() ? join_path(path, "_class_name") : std::string("scheduler_class"),
                      "scheduler class '" + cls + "' is not supported; supported: " + list + did_you_mean(cls, known));
  }
  SchedulerTranslation out;
  // Unknown keys: an error, or (reading the config as another class, as diffusers'
  // from_config does) dropped with a note.
  {
    const std::vector<std::string> allowed = found->second + kMetaKeys;
    for (const auto& [key, value] : config.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      if (!class_override.empty()) {
        out.dropped.push_back(key);
        continue;
      }
      throw ConfigError(join_path(path, key), "is not a setting of " + cls + " that diffsde reads" +
                                                  did_you_mean(key, allowed));
    }
  }
  // The keys read: the config less those dropped (a class without timestep_spacing spaces
  // its timesteps its own way, whatever the file says).
  json kept = config;
  for (const auto& key : out.dropped) kept.erase(key);
  const Reader r(kept, path, cls);
  if (steps < 1) throw ConfigError("steps", "must be >= 1 (diffusers' num_inference_steps)");

  if (cls == "EDMEulerScheduler" || cls == "EDMDPMSolverMultistepScheduler") {
    translate_edm(r, cls, steps, out);
    return out;
  }
  if (cls == "FlowMatchEulerDiscreteScheduler") {
    translate_flow_match(r, steps, mu, out);
    return out;
  }
  if (!std::isnan(mu)) throw ConfigError("mu", "applies to FlowMatchEulerDiscreteScheduler's dynamic shifting only");

  // The schedule: vp_discrete with diffusers' betas.
  json& sch = out.schedule;
  sch = {{"name", "vp_discrete"}};
  const long n_train = r.integer("num_train_timesteps", 1000);
  if (n_train < 1) r.fail("num_train_timesteps", "must be >= 1");
  const std::string beta_schedule = r.choice("beta_schedule", "linear",
                                             {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"},
                                             "known: linear, scaled_linear, squaredcos_cap_v2, sigmoid");
  if (r.has("trained_betas")) {
    const json& b = config.at("trained_betas");
    if (!b.is_array()) r.fail("trained_betas", "expected a list of numbers");
    sch["trained_betas"] = b;
  } else {
    sch["num_steps"] = n_train;
    sch["beta_schedule"] = beta_schedule;
    if (beta_schedule != "squaredcos_cap_v2") {
      sch["beta_start"] = r.number("beta_start", 0.0001);
      sch["beta_end"] = r.number("beta_end", 0.02);
    }
  }
  const bool zero_snr = r.boolean("rescale_betas_zero_snr", false);
  if (zero_snr) {
    sch["rescale_betas_zero_snr"] = true;
    // diffusers' Euler, UniPC and DPM-Solver schedulers replace alpha_bar = 0 at the last
    // step by 2^-24 ("so the first sigma is not inf"); DDIM, DDPM and PNDM keep the 0.
    if (cls != "DDIMScheduler" && cls != "DDPMScheduler" && cls != "PNDMScheduler")
      sch["final_alpha_bar"] = kTwoPowMinus24;
  }

  // The schedule is made here once, so that what its checks refuse is reported at the
  // scheduler config's own key.
  try {
    schedule_registry().create(sch, "schedule");
  } catch (const ConfigError& e) {
    std::string key = "beta_schedule";
    const std::string& at = e.path();
    const auto ends = [&](const std::string& k) { return at.size() >= k.size() && at.compare(at.size() - k.size(), k.size(), k) == 0; };
    if (ends("final_alpha_bar") || ends("rescale_betas_zero_snr")) key = "rescale_betas_zero_snr";
    else if (ends("num_steps")) key = "num_train_timesteps";
    else if (ends("beta_start") || ends("beta_end") || ends("trained_betas")) key = at.substr(at.rfind('.') + 1);
    else if (at.find("trained_betas") != std::string::npos) key = "trained_betas";
    std::string message = e.message();
    if (ends("final_alpha_bar"))
      message = "diffusers then puts alpha_bar = 2^-24 at the last step, but for these betas the step before it "
                "already has a smaller alpha_bar, and a schedule whose alpha_bar rises cannot be followed (" +
                e.message() + ")";
    r.fail(key, message);
  }

  // What the network predicts.
  const std::string prediction = r.choice("prediction_type", "epsilon", {"epsilon", "sample", "v_prediction"},
                                          "known: epsilon, sample, v_prediction");
  out.prediction = prediction == "epsilon" ? "eps" : prediction == "sample" ? "x0" : "v";
  out.prediction_given = r.has("prediction_type");

  // The grid.
  json& grid = out.grid;
  const std::string spacing = r.choice("timestep_spacing", "linspace", {"linspace", "leading", "trailing"},
                                       "known: linspace, leading, trailing");
  grid = {{"name", "diffusers"}, {"steps", steps}, {"timestep_spacing", spacing}};
  const long offset = r.integer("steps_offset", 0);
  if (offset < 0) r.fail("steps_offset", "must be >= 0");
  if (offset != 0 && spacing == "leading") grid["steps_offset"] = offset;

  const auto sigma_rule = [&]() -> std::string {
    std::vector<std::string> on;
    for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas"})
      if (r.has(key) && r.boolean(key, false)) on.push_back(key);
    if (on.size() > 1) r.fail(on[1], "only one of " + on[0] + " and " + on[1] + " can be true");
    if (on.empty()) return "timesteps";
    if (on[0] == "use_karras_sigmas") return "karras";
    if (on[0] == "use_exponential_sigmas") return "exponential";
    if (on[0] == "use_beta_sigmas") return "beta";
    return "lu_lambdas";
  };
  // The sigma rule of a class whose exponential and beta sigmas are not translated yet.
  const auto spaced_or_karras = [&]() {
    const std::string rule = sigma_rule();
    if (rule == "exponential" || rule == "beta")
      r.fail(rule == "exponential" ? "use_exponential_sigmas" : "use_beta_sigmas",
             "is not translated for " + cls + " yet; use_karras_sigmas is");
    return rule;
  };
  const auto thresholding = [&]() {
    if (!r.boolean("thresholding", false)) return;
    out.thresholding = {{"ratio", r.number("dynamic_thresholding_ratio", 0.995)},
                        {"max", r.number("sample_max_value", 1.0)}};
  };

  if (cls == "DDIMScheduler" || cls == "DDPMScheduler") {
    grid["family"] = "ddim";
    if (cls == "DDIMScheduler") {
      const bool to_one = r.boolean("set_alpha_to_one", true);
      if (!to_one) grid["set_alpha_to_one"] = false;
    }
    // DDPM's last step goes to alpha_bar = 1 (its final_alpha_cumprod is one).
    json& solver = out.solver;
    if (cls == "DDIMScheduler") {
      solver = {{"name", "ddim"}, {"eta", 0.0}};
    } else {
      const std::string variance = r.choice("variance_type", "fixed_small", {"fixed_small", "fixed_large"},
                                            "learned variances need a network output diffsde does not read");
      solver = {{"name", "ddpm"}, {"variance", variance == "fixed_small" ? "posterior" : "beta"}};
      // DDPMScheduler adds noise at every timestep above 0, its last step's included; the
      // grid is checked below, so a failure here is left to that check.
      if (variance == "fixed_large") {
        try {
          const std::shared_ptr<const Schedule> schedule = schedule_registry().create(sch, "schedule");
          const auto g = grid_registry().create(grid, "grid", BuildContext{schedule, ""});
          if (const auto* d = dynamic_cast<const DiffusersGrid*>(g.get())) {
            const auto tab = d->table(*schedule);
            if (!tab.timesteps.empty() && tab.timesteps.back() > 0) solver["final_noise"] = true;
          }
        } catch (const Error&) {
        }
      }
    }
    if (r.boolean("clip_sample", true)) {
      const double range = r.number("clip_sample_range", 1.0);
      if (!(range > 0)) r.fail("clip_sample_range", "must be > 0");
      solver["clip_x0"] = {-range, range};
      // DDIM steps with the model's own eps unless the pipeline asks for the clipped one;
      // DDPM's posterior mean is the clipped-x0 form.
      if (cls == "DDIMScheduler") solver["use_clipped_model_output"] = false;
    }
    if (r.boolean("thresholding", false)) {
      if (cls == "DDIMScheduler")
        r.fail("thresholding", "DDIM's thresholding keeps the model's own eps (use_clipped_model_output False), "
                               "which diffsde's thresholding layer does not offer; use DDPMScheduler or a "
                               "DPM-Solver++ scheduler");
      if (r.boolean("clip_sample", true))
        r.fail("clip_sample", "with thresholding, diffusers thresholds instead of clipping; set clip_sample false");
      thresholding();
    }
  } else if (cls == "DPMSolverMultistepScheduler") {
    grid["family"] = "dpm_solver";
    const std::string rule = sigma_rule();
    if (rule != "timesteps") grid["sigmas"] = rule;
    const std::string final_type = r.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}, "known: zero, sigma_min");
    if (final_type != "zero") grid["final_sigmas_type"] = final_type;
    if (r.has("lambda_min_clipped")) grid["lambda_min_clipped"] = r.number("lambda_min_clipped", 0);
    r.require("use_flow_sigmas", false, "flow-matching sigmas are not supported yet");
    r.require("variance_type", nullptr, "learned variances need a network output diffsde does not read");
    const long order = r.integer("solver_order", 2);
    if (order < 1 || order > 3) r.fail("solver_order", "must be 1, 2 or 3");
    const std::string algorithm = r.choice("algorithm_type", "dpmsolver++", {"dpmsolver++", "dpmsolver", "sde-dpmsolver++"},
                                           "sde-dpmsolver (noise prediction) is not translated yet; known here: "
                                           "dpmsolver++, dpmsolver, sde-dpmsolver++");
    if (algorithm == "dpmsolver" && final_type == "zero")
      r.fail("final_sigmas_type", "diffusers refuses final_sigmas_type zero with algorithm_type dpmsolver; use "
                                  "sigma_min");
    const std::string solver_type = r.choice("solver_type", "midpoint", {"midpoint", "heun"}, "known: midpoint, heun");
    const bool sde = algorithm == "sde-dpmsolver++";
    if (sde && order == 3)
      r.fail("solver_order", "diffusers' third-order update has no sde-dpmsolver++ form; use 1 or 2");
    if (solver_type == "heun" && algorithm == "dpmsolver")
      r.fail("solver_type", "heun with algorithm_type dpmsolver is not translated yet; use midpoint, or dpmsolver++");
    if (solver_type == "heun" && order == 3)
      r.fail("solver_type", "heun at solver_order 3 (diffusers' second-order warm-up steps in the heun form, its "
                            "third-order steps without it) is not translated yet; use midpoint, or solver_order 2");
    // Each step's order as diffusers' step() chooses it: the history's warm-up; first order
    // at the last step when it ends at sigma 0, with euler_at_final, or with
    // lower_order_final below 15 steps; at most second order at the step before it below
    // 15 steps. When the grid leaves out diffusers' final step of length zero (a sigma rule
    // ending at sigma_min with final_sigmas_type sigma_min), its entry goes too.
    const bool lower_order_final = r.boolean("lower_order_final", true);
    const bool euler_at_final = r.boolean("euler_at_final", false);
    json orders = multistep_orders(steps, order, lower_order_final, euler_at_final || final_type == "zero");
    if (rule != "timesteps" && final_type == "sigma_min" && orders.size() > 1) orders.erase(orders.size() - 1);
    if (sde || solver_type == "heun") {
      // SDE-DPM-Solver++(2M) (eta 1) and DPM-Solver++(2M) in the heun form (eta 0) are
      // dpmpp_2m_sde: the same first- and second-order updates; its noise is one draw per
      // step, none on a final step to sigma 0 (where diffusers' noise is multiplied by 0).
      out.solver = {{"name", "dpmpp_2m_sde"}, {"eta", sde ? 1.0 : 0.0}, {"solver_type", solver_type},
                    {"orders", orders}};
    } else {
      out.solver = {{"name", "dpm_solver"}, {"order", order}, {"method", "multistep"}, {"algorithm", algorithm},
                    {"orders", orders}};
      // diffusers' third-order multistep weights D2 as DPM-Solver's reference code does.
      if (order == 3) out.solver["coefficients"] = "published";
    }
    thresholding();
    if (!out.thresholding.is_null() && algorithm == "dpmsolver")
      r.fail("thresholding", "with algorithm_type dpmsolver diffusers thresholds and converts back to eps, which "
                             "is the thresholding layer's form too, but it is not verified here yet; use "
                             "dpmsolver++");
  } else if (cls == "DPMSolverSinglestepScheduler") {
    // set_timesteps as DPMSolverMultistepScheduler's with linspace spacing (the dpm_solver
    // family); each step evaluates the model once at its grid time and updates from the
    // sample kept at the start of its run of orders 1, 2, .., k (dpm_solver's grid stages).
    grid["family"] = "dpm_solver";
    for (const char* key : {"use_exponential_sigmas", "use_beta_sigmas"})
      r.require(key, false, "not verified against diffusers' singlestep set_timesteps yet; use_karras_sigmas is");
    r.require("use_flow_sigmas", false, "flow-matching sigmas are not supported yet");
    r.require("use_dynamic_shifting", false, "dynamic shifting (flow-matching sigmas) is not supported yet");
    r.require("variance_type", nullptr, "learned variances need a network output diffsde does not read");
    const bool karras = r.boolean("use_karras_sigmas", false);
    if (karras) grid["sigmas"] = "karras";
    const std::string final_type = r.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}, "known: zero, sigma_min");
    if (final_type != "zero") grid["final_sigmas_type"] = final_type;
    if (r.has("lambda_min_clipped")) grid["lambda_min_clipped"] = r.number("lambda_min_clipped", 0);
    const long order = r.integer("solver_order", 2);
    if (order < 1 || order > 3) r.fail("solver_order", "must be 1, 2 or 3");
    const std::string algorithm = r.choice("algorithm_type", "dpmsolver++", {"dpmsolver++", "dpmsolver"},
                                           "sde-dpmsolver++ is not translated yet; known here: dpmsolver++, dpmsolver");
    if (algorithm == "dpmsolver" && final_type == "zero")
      r.fail("final_sigmas_type", "diffusers refuses final_sigmas_type zero with algorithm_type dpmsolver; use "
                                  "sigma_min");
    r.choice("solver_type", "midpoint", {"midpoint"}, "diffsde's dpm_solver with grid stages takes the midpoint form; "
                                                      "heun is not offered yet");
    // The order list of diffusers' set_timesteps: lower_order_final is switched on when the
    // runs do not fill the steps or when the last sigma is zero, and then the last step is
    // first order (get_order_list's final_sigmas_type zero rule).
    bool lower_order_final = r.boolean("lower_order_final", false);
    if (final_type == "zero") lower_order_final = true;
    std::vector<int> list = dpm_singlestep_orders(static_cast<int>(order), lower_order_final,
                                                  static_cast<std::size_t>(steps));
    if (final_type == "zero" && !list.empty()) list.back() = 1;
    // Karras sigmas end at sigma_min, so final_sigmas_type sigma_min repeats it: diffusers'
    // last step has length zero and the grid leaves it out. A first-order step of length
    // zero leaves the sample as it is; a higher-order one does not, and is refused.
    if (karras && final_type == "sigma_min" && list.size() > 1) {
      if (list.back() != 1)
        r.fail("final_sigmas_type", "with use_karras_sigmas, sigma_min repeats the last sigma and diffusers' last "
                                    "step (of order " + std::to_string(list.back()) + " at " + std::to_string(steps) +
                                    " steps) has length zero but still moves the sample, which diffsde's grid leaves "
                                    "out; use final_sigmas_type zero or a step count whose order list ends in 1");
      list.pop_back();
    }
    out.solver = {{"name", "dpm_solver"}, {"order", order}, {"method", "singlestep"}, {"stages", "grid"},
                  {"algorithm", algorithm}, {"orders", list}};
    thresholding();
    if (!out.thresholding.is_null() && algorithm == "dpmsolver")
      r.fail("thresholding", "with algorithm_type dpmsolver diffusers thresholds and converts back to eps, which "
                             "is not verified here yet; use dpmsolver++");
  } else if (cls == "PNDMScheduler") {
    // PNDM's timesteps are DDIM's, and so is its step from T to T - N // steps.
    grid["family"] = "ddim";
    if (!r.boolean("set_alpha_to_one", false)) grid["set_alpha_to_one"] = false;
    out.solver = {{"name", "pndm"}};
    if (!r.boolean("skip_prk_steps", false)) {
      // PNDM's pseudo Runge-Kutta warm-up over the last four of its timesteps.
      if (steps < 4)
        r.fail("skip_prk_steps", "false (PNDM's pseudo Runge-Kutta warm-up) needs at least 4 steps, as diffusers' "
                                 "set_timesteps does; give more steps, or skip_prk_steps true");
      out.solver["warmup"] = "prk";
    }
  } else if (cls == "UniPCMultistepScheduler") {
    grid["family"] = "dpm_solver";
    const std::string rule = sigma_rule();
    if (rule != "timesteps") grid["sigmas"] = rule;
    const std::string final_type = r.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}, "known: zero, sigma_min");
    if (final_type != "zero") grid["final_sigmas_type"] = final_type;
    // With these sigmas ending at sigma_min, diffusers' last step has length zero: the grid
    // leaves it out, and its corrector (of the step before) becomes unipc's final_corrector;
    // the orders diffusers' lower_order_final gives count that step.
    const bool zero_length_last = rule != "timesteps" && final_type == "sigma_min";
    r.require("use_flow_sigmas", false, "flow-matching sigmas are not supported yet");
    r.require("solver_p", nullptr, "a separate predictor scheduler is not supported");
    json disabled = json::array();
    if (r.has("disable_corrector")) {
      const json& d = kept.at("disable_corrector");
      if (!d.is_array()) r.fail("disable_corrector", "expected a list of step indices");
      for (std::size_t k = 0; k < d.size(); ++k) {
        if (!d[k].is_number_integer() || d[k].get<long>() < 0)
          throw ConfigError(join_path(r.at("disable_corrector"), k), "expected a step index >= 0");
        disabled.push_back(d[k].get<long>());
      }
    }
    const long order = r.integer("solver_order", 2);
    if (order < 1 || order > 3) r.fail("solver_order", "must be 1, 2 or 3");
    const std::string variant = r.choice("solver_type", "bh2", {"bh1", "bh2"}, "known: bh1, bh2");
    if (variant == "bh1" && final_type == "zero")
      r.fail("solver_type", "bh1 with final_sigmas_type zero: diffusers' UniPC step to sigma 0 multiplies B(h) = -inf "
                            "by a zero correction and returns NaN; use bh2, or end at sigma_min");
    const bool predict_x0 = r.boolean("predict_x0", true);
    if (!r.boolean("lower_order_final", true) && final_type == "zero" && order > 1)
      r.fail("lower_order_final", "false with final_sigmas_type zero makes diffusers' UniPC take a higher-order step "
                                  "to sigma 0, where lambda is infinite and its result is not finite; keep "
                                  "lower_order_final, or end at sigma_min");
    const bool lower_order_final = r.boolean("lower_order_final", true);
    if (zero_length_last && !lower_order_final && order > 1)
      r.fail("lower_order_final", "false with " + rule + " sigmas ending at sigma_min makes diffusers' UniPC take a "
                                  "higher-order step of length zero at the end, whose coefficients are 0/0 and whose "
                                  "result is not finite; keep lower_order_final, or end at sigma 0");
    out.solver = {{"name", "unipc"}, {"order", order}, {"variant", variant},
                  {"prediction", predict_x0 ? "data" : "noise"}};
    if (zero_length_last) {
      out.solver["final_corrector"] = true;
      if (lower_order_final) {
        json orders = json::array();
        for (long i = 0; i + 1 < steps; ++i) orders.push_back(std::min({order, steps - i, i + 1}));
        out.solver["orders"] = orders;
      }
    }
    if (!out.solver.contains("orders")) out.solver["lower_order_final"] = lower_order_final;
    if (!disabled.empty()) out.solver["disable_corrector"] = disabled;
    thresholding();
    if (!out.thresholding.is_null() && !predict_x0)
      r.fail("thresholding", "diffusers' UniPC thresholds only with predict_x0");
  } else if (cls == "DEISMultistepScheduler") {
    // DPMSolverMultistep's timesteps; the last step ends at the table's first sigma
    // (sigma_min), a Karras grid with a repeated sigma_min whose zero-length step the grid
    // leaves out.
    grid["family"] = "dpm_solver";
    const std::string rule = spaced_or_karras();
    if (rule != "timesteps") grid["sigmas"] = rule;
    grid["final_sigmas_type"] = "sigma_min";
    r.require("use_flow_sigmas", false, "flow-matching sigmas are not supported yet");
    // diffusers itself reads the DPM-Solver names as DEIS's own.
    r.choice("algorithm_type", "deis", {"deis", "dpmsolver", "dpmsolver++"},
             "DEISMultistepScheduler implements deis, and reads dpmsolver and dpmsolver++ as deis");
    r.choice("solver_type", "logrho", {"logrho", "midpoint", "heun", "bh1", "bh2"},
             "DEISMultistepScheduler implements logrho, and reads midpoint, heun, bh1 and bh2 as logrho");
    const long order = r.integer("solver_order", 2);
    if (order < 1 || order > 3) r.fail("solver_order", "must be 1, 2 or 3");
    // diffusers' step(): the history's warm-up; below 15 steps with lower_order_final the
    // last step is first order and the one before it at most second.
    const bool lower_order_final = r.boolean("lower_order_final", true);
    json orders = multistep_orders(steps, order, lower_order_final, false);
    if (rule != "timesteps" && orders.size() > 1) orders.erase(orders.size() - 1);
    out.solver = {{"name", "deis"}, {"order", order}, {"orders", orders}};
    thresholding();
  } else if (cls == "LCMScheduler") {
    // LCM's timesteps: of its distillation schedule k - 1, 2k - 1, .., N - 1 (k = N //
    // original_inference_steps), `steps` taken at evenly spaced indices from the top; each
    // step re-noises the consistency function's output to the next, the last returns it.
    // (timestep_spacing, steps_offset and set_alpha_to_one play no part in it.)
    grid.erase("timestep_spacing");
    grid.erase("steps_offset");
    grid.erase("steps");
    grid["family"] = "ddim";
    const long original = r.integer("original_inference_steps", 50);
    if (original < 1 || original > n_train)
      r.fail("original_inference_steps", "must lie in [1, num_train_timesteps = " + std::to_string(n_train) + "]");
    if (steps > original)
      r.fail("original_inference_steps", "is " + std::to_string(original) + ", fewer than the " +
                                             std::to_string(steps) + " steps asked for: LCM takes its timesteps "
                                             "from that schedule");
    const long k = n_train / original;
    // np.floor(np.linspace(0, original, steps, endpoint=False)) into the reversed schedule
    // (numpy's i * (original / steps), the first values of the endpoint linspace of steps + 1).
    const std::vector<double> at = numpy_linspace(0.0, static_cast<double>(original), static_cast<int>(steps) + 1);
    json timesteps = json::array();
    for (long i = 0; i < steps; ++i) timesteps.push_back((original - static_cast<long>(std::floor(at[i]))) * k - 1);
    grid["timesteps"] = timesteps;
    const double scaling = r.number("timestep_scaling", 10.0);
    if (!(scaling > 0) || !std::isfinite(scaling)) r.fail("timestep_scaling", "must be finite and > 0");
    out.solver = {{"name", "lcm"}, {"timestep_scaling", scaling}};
    if (r.boolean("thresholding", false)) {
      thresholding();
    } else if (r.boolean("clip_sample", false)) {
      const double range = r.number("clip_sample_range", 1.0);
      if (!(range > 0)) r.fail("clip_sample_range", "must be > 0");
      out.solver["clip_x0"] = {-range, range};
    }
  } else if (cls == "DPMSolverSDEScheduler") {
    // k-diffusion's DPM-Solver++ SDE (r = 1/2) on Euler's timesteps and sigmas, its second
    // evaluation at the geometric mean of consecutive sigmas, its noise from a Brownian tree.
    grid["family"] = "euler";
    const std::string rule = spaced_or_karras();
    if (rule != "timesteps") grid["sigmas"] = rule;
    r.require("noise_sampler_seed", nullptr,
              "torchsde's Brownian tree is not reproduced; diffsde's brownian_tree noise is seeded by the config's "
              "seed (or replay the draws with \"noise\")");
    if (out.prediction == "x0") r.fail("prediction_type", "diffusers' DPMSolverSDEScheduler does not implement sample "
                                                          "prediction");
    out.solver = {{"name", "dpmpp_sde"}, {"eta", 1.0}, {"r", 0.5}};
    out.noise = "brownian_tree";
  } else if (cls == "HeunDiscreteScheduler" || cls == "KDPM2DiscreteScheduler" ||
             cls == "KDPM2AncestralDiscreteScheduler" || cls == "LMSDiscreteScheduler") {
    // Euler's timesteps and sigmas, ending at sigma 0.
    grid["family"] = "euler";
    const std::string rule = cls == "LMSDiscreteScheduler" ? spaced_or_karras() : sigma_rule();
    // KDPM2's set_timesteps rounds the timesteps of its Karras sigmas (not the others').
    if (rule == "karras" && (cls == "KDPM2DiscreteScheduler" || cls == "KDPM2AncestralDiscreteScheduler"))
      grid["round_timesteps"] = true;
    if (rule != "timesteps") grid["sigmas"] = rule;
    if (cls == "HeunDiscreteScheduler") {
      if (r.boolean("clip_sample", false))
        r.fail("clip_sample", "clipping Heun's x0 prediction is not supported yet");
      out.solver = {{"name", "heun"}};
    } else if (cls == "KDPM2DiscreteScheduler") {
      out.solver = {{"name", "dpm2"}};
    } else if (cls == "KDPM2AncestralDiscreteScheduler") {
      out.solver = {{"name", "dpm2_ancestral"}};
    } else {
      // LMSDiscreteScheduler.step's `order` argument: 4 unless the pipeline passes another.
      out.solver = {{"name", "lms"}, {"order", 4}};
    }
    if (cls == "KDPM2DiscreteScheduler" || cls == "KDPM2AncestralDiscreteScheduler")
      if (out.prediction == "x0")
        r.fail("prediction_type", "diffusers' " + cls + " does not implement sample prediction");
  } else if (cls == "EulerDiscreteScheduler" || cls == "EulerAncestralDiscreteScheduler") {
    grid["family"] = "euler";
    if (cls == "EulerDiscreteScheduler") {
      const std::string rule = sigma_rule();
      if (rule != "timesteps") grid["sigmas"] = rule;
      const std::string final_type =
          r.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}, "known: zero, sigma_min");
      if (final_type != "zero") grid["final_sigmas_type"] = final_type;
      r.choice("interpolation_type", "linear", {"linear"}, "log_linear is not supported yet");
      r.choice("timestep_type", "discrete", {"discrete"}, "continuous timesteps (EDM-style networks) are not "
                                                          "supported yet");
      r.require("sigma_min", nullptr, "the sigma range comes from the betas");
      r.require("sigma_max", nullptr, "the sigma range comes from the betas");
      out.solver = {{"name", "euler"}};
    } else {
      out.solver = {{"name", "euler_ancestral"}};
    }
  }
  return out;
}

json expand_scheduler_config(const json& config, const std::string& base_dir, std::vector<std::string>* notes) {
  if (!config.is_object() || !config.contains("scheduler_config")) {
    if (config.is_object())
      for (const char* key : {"steps", "scheduler_class", "mu"})
        if (config.contains(key))
          throw ConfigError(key, "belongs with \"scheduler_config\" (diffusers' num_inference_steps and class)");
    return config;
  }
  json out = config;
  if (!config.contains("steps")) throw ConfigError("steps", "is required with scheduler_config (num_inference_steps)");
  const long steps = static_cast<long>(non_negative_integer(config.at("steps"), "steps"));
  std::string cls;
  if (config.contains("scheduler_class")) {
    if (!config.at("scheduler_class").is_string()) throw ConfigError("scheduler_class", "expected a class name");
    cls = config.at("scheduler_class").get<std::string>();
  }
  if (steps < 1) throw ConfigError("steps", "must be >= 1 (diffusers' num_inference_steps), got " + std::to_string(steps));
  double mu = std::numeric_limits<double>::quiet_NaN();
  if (config.contains("mu")) {
    if (!config.at("mu").is_number()) throw ConfigError("mu", "expected a number (set_timesteps' mu)");
    mu = config.at("mu").get<double>();
    if (!std::isfinite(mu)) throw ConfigError("mu", "must be finite");
  }
  const SchedulerTranslation t =
      translate_given(config.at("scheduler_config"), base_dir, "scheduler_config", steps, cls, mu);
  if (notes != nullptr)
    for (const auto& key : t.dropped)
      notes->push_back("scheduler_config." + key + " is not a setting of " + cls + ": dropped, as diffusers' "
                       "from_config does");
  out.erase("scheduler_config");
  out.erase("steps");
  out.erase("scheduler_class");
  out.erase("mu");
  if (!out.contains("schedule")) out["schedule"] = t.schedule;
  if (!out.contains("grid")) out["grid"] = t.grid;
  if (!out.contains("solver")) {
    out["solver"] = t.solver;
    // The class's own noise, unless the config names one; a replay file beside a sampler
    // that calls k-diffusion's noise sampler holds that sampler's outputs.
    if (!t.noise.is_null() && !out.contains("noise")) out["noise"] = t.noise;
    const json& noise = out.contains("noise") ? out.at("noise") : json();
    const bool replay = (noise.is_string() && noise.get<std::string>() != "philox" &&
                         noise.get<std::string>() != "brownian_tree") ||
                        (noise.is_object() && noise.value("name", "") == "replay");
    if (replay && t.solver.value("name", "") == "dpmpp_sde") out["solver"]["sampler_draws"] = true;
  }
  apply_model_settings(t, "", out);
  // The timesteps too are checked here, so that what the grid refuses is reported at the
  // scheduler config's key (or at "steps") rather than at a grid the user did not write.
  if (!config.contains("grid") && !config.contains("schedule")) {
    try {
      const std::shared_ptr<const Schedule> schedule = schedule_registry().create(t.schedule, "schedule");
      grid_registry().create(t.grid, "grid", BuildContext{schedule, base_dir})->times(*schedule);
    } catch (const ConfigError& e) {
      const std::string& at = e.path();
      const auto pos = at.rfind('.');
      const std::string leaf = pos == std::string::npos ? at : at.substr(pos + 1);
      std::string key = "steps";
      if (leaf == "timestep_spacing" || leaf == "steps_offset" || leaf == "lambda_min_clipped")
        key = join_path("scheduler_config", leaf);
      else if (leaf == "sigmas" && t.grid.contains("sigmas"))
        key = "scheduler_config";
      throw ConfigError(key, e.message());
    }
  }
  return out;
}

json expand_problem_scheduler_config(const json& problem, const std::string& base_dir, const std::string& path) {
  if (!problem.is_object() || !problem.contains("scheduler_config")) return problem;
  // The sweep lists its own grids and solvers; the translation's schedule and the
  // network's settings are what it takes (one step is enough to check the rest).
  const SchedulerTranslation t =
      translate_given(problem.at("scheduler_config"), base_dir, join_path(path, "scheduler_config"), 1, "");
  json out = problem;
  out.erase("scheduler_config");
  if (!out.contains("schedule")) out["schedule"] = t.schedule;
  apply_model_settings(t, path, out);
  return out;
}

}  // namespace diffsde
