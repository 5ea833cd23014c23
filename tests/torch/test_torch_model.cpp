// The TorchScript model adapter, tested against exact answers: a TorchScript module
// that computes the closed-form eps of Gaussian data must reproduce the analytic
// GaussianModel through the whole stack (eps, Jacobian-vector products, sampling), and
// conditional modules whose output is an exact per-row formula of x, t and their inputs.
#include <torch/script.h>
// torch before Catch2: glog's CHECK would replace Catch2's.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/guidance.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/diffusers_config.hpp"
#include "support/diffusers_reference.hpp"
#include "support/exact.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

using diffsde::test::TempDir;

const std::vector<double> kMu = {1.0, -0.5, 2.0};
const std::vector<double> kSd = {0.5, 1.5, 0.8};

// A module (built in C++ with define()) whose forward is the exact eps of
// N(kMu, diag(kSd^2)) under the default vp_linear schedule (beta0 0.1, beta1 20),
// returned as `prediction`.
torch::jit::Module gaussian_module(const std::string& prediction = "eps") {
  torch::jit::Module m("GaussianEps");
  m.register_buffer("mu", torch::tensor(kMu, torch::kFloat64).reshape({1, 3}));
  m.register_buffer("sd", torch::tensor(kSd, torch::kFloat64).reshape({1, 3}));
  std::string out = "e";
  if (prediction == "x0") out = "(x - torch.sqrt(s2) * e) / torch.sqrt(a2)";
  if (prediction == "v") out = "torch.sqrt(a2) * e - torch.sqrt(s2) * (x - torch.sqrt(s2) * e) / torch.sqrt(a2)";
  m.define(R"(
def forward(self, x, t):
    lab = -(0.1 * t + 0.5 * 19.9 * t * t)
    a2 = torch.exp(lab).unsqueeze(1)
    s2 = -torch.expm1(lab).unsqueeze(1)
    e = torch.sqrt(s2) * (x - torch.sqrt(a2) * self.mu) / (a2 * self.sd * self.sd + s2)
    return )" + out + "\n");
  return m;
}

std::shared_ptr<const Schedule> linear() { return std::make_shared<VpLinearSchedule>(); }

GaussianModel exact_model() {
  return GaussianModel(linear(), Eigen::Map<const Eigen::VectorXd>(kMu.data(), 3),
                       Eigen::Map<const Eigen::VectorXd>(kSd.data(), 3));
}

std::unique_ptr<Model> torch_model(const json& params, const std::string& base_dir = "") {
  enable_torch_models();
  BuildContext ctx;
  ctx.schedule = linear();
  ctx.base_dir = base_dir;
  json object = params;
  object["name"] = "torchscript";
  return model_registry().create(object, "model", ctx);
}

State batch(long n, std::uint64_t seed) { return test::standard_normal_rows(n, 3, seed) * 1.5; }

// forward(x, t, y): eps = x * 0.5 + y * 0.25 + t (float64 arithmetic, exact per row).
torch::jit::Module label_module() {
  torch::jit::Module m("LabelEps");
  m.define(R"(
def forward(self, x, t, y):
    return x * 0.5 + y.to(x.dtype).unsqueeze(1) * 0.25 + t.unsqueeze(1)
)");
  return m;
}

// forward(x, t, emb): eps = x * 0.5 + emb * 0.25 + t, emb (B, 3).
torch::jit::Module embedding_module() {
  torch::jit::Module m("EmbeddingEps");
  m.define(R"(
def forward(self, x, t, emb):
    return x * 0.5 + emb * 0.25 + t.unsqueeze(1)
)");
  return m;
}

const json kLabelInputs = json::array({{{"name", "y"}, {"type", "int64"}, {"classes", 10}, {"null", 10}}});
const json kEmbeddingInputs = json::array({{{"name", "emb"}, {"type", "float64"}, {"shape", {3}}}});

// The expected eps of label_module (y: row r's label) or embedding_module (emb: row r's
// three values), computed in the same order as the module.
double label_eps(double x, double y, double t) { return x * 0.5 + y * 0.25 + t; }

std::shared_ptr<const Model> shared(std::unique_ptr<Model> model) { return std::shared_ptr<const Model>(std::move(model)); }

}  // namespace

TEST_CASE("a TorchScript module with the exact Gaussian eps matches GaussianModel", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  const auto model = torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "float64"}});
  const GaussianModel exact = exact_model();
  const State x = batch(7, 1);
  State a(7, 3), b(7, 3);
  for (double t : {1e-3, 0.1, 0.5, 0.999}) {
    model->eps(x, t, a);
    exact.eps(x, t, b);
    CHECK(test::max_abs_diff(a, b) < 1e-12);
  }
}

TEST_CASE("x0 and v predictions are converted to eps", "[torch]") {
  TempDir dir;
  const GaussianModel exact = exact_model();
  const State x = batch(5, 2);
  State a(5, 3), b(5, 3);
  for (const std::string prediction : {"x0", "v"}) {
    save_torchscript(gaussian_module(prediction), dir.file(prediction + ".pt"), json::object());
    const auto model = torch_model(
        {{"path", dir.file(prediction + ".pt")}, {"shape", {3}}, {"dtype", "float64"}, {"prediction", prediction}});
    for (double t : {0.05, 0.5, 0.9}) {
      model->eps(x, t, a);
      exact.eps(x, t, b);
      INFO(prediction << " at t = " << t);
      CHECK(test::max_abs_diff(a, b) < 1e-10);
    }
  }
}

namespace {

// The model the registry makes from `params` on `schedule`.
std::unique_ptr<Model> torch_model_on(std::shared_ptr<const Schedule> schedule, const json& params) {
  enable_torch_models();
  BuildContext ctx;
  ctx.schedule = std::move(schedule);
  json object = params;
  object["name"] = "torchscript";
  return model_registry().create(object, "model", ctx);
}

}  // namespace

TEST_CASE("A flow-matching network's velocity (eps - x0) is converted to eps", "[torch]") {
  // forward returns the exact velocity eps - x0 of N(kMu, diag(kSd^2)) data on flow with
  // shift 1 (alpha = 1 - t, sigma = t).
  TempDir dir;
  torch::jit::Module m("FlowVelocity");
  m.register_buffer("mu", torch::tensor(kMu, torch::kFloat64).reshape({1, 3}));
  m.register_buffer("sd", torch::tensor(kSd, torch::kFloat64).reshape({1, 3}));
  m.define(R"(
def forward(self, x, t):
    s = t.unsqueeze(1)
    a = 1 - s
    e = s * (x - a * self.mu) / (a * a * self.sd * self.sd + s * s)
    return e - (x - s * e) / a
)");
  save_torchscript(m, dir.file("flow.pt"), json{{"prediction", "velocity"}, {"shape", {3}}});
  auto flow = std::make_shared<FlowSchedule>(1.0);
  const GaussianModel exact(flow, Eigen::Map<const Eigen::VectorXd>(kMu.data(), 3),
                            Eigen::Map<const Eigen::VectorXd>(kSd.data(), 3));
  // From the file's metadata and from the config.
  for (const json& params : {json{{"path", dir.file("flow.pt")}, {"dtype", "float64"}},
                             json{{"path", dir.file("flow.pt")}, {"dtype", "float64"}, {"prediction", "velocity"}}}) {
    const auto model = torch_model_on(flow, params);
    const State x = batch(5, 3);
    State a(5, 3), b(5, 3), ja(5, 3), jb(5, 3), ea(5, 3);
    const State v = batch(5, 4);
    for (double t : {0.02, 0.5, 0.97}) {
      INFO("t = " << t);
      model->eps(x, t, a);
      exact.eps(x, t, b);
      CHECK(test::max_abs_diff(a, b) < 1e-10);
      model->eps_jvp(x, t, v, ea, ja);
      exact.eps_jvp(x, t, v, b, jb);
      CHECK(test::max_abs_diff(ja, jb) < 1e-9);
    }
  }
}

TEST_CASE("An EDM-preconditioned network gives the exact eps on the edm schedule", "[torch]") {
  // forward(x, c) is EDM's exact F for N(kMu, diag(kSd^2)) data with sigma_data 0.5: it
  // receives c_in x and c_noise = log(sigma)/4 (Karras et al. 2022, Table 1).
  TempDir dir;
  torch::jit::Module m("EdmF");
  m.register_buffer("mu", torch::tensor(kMu, torch::kFloat64).reshape({1, 3}));
  m.register_buffer("sd", torch::tensor(kSd, torch::kFloat64).reshape({1, 3}));
  m.define(R"(
def forward(self, x, c):
    s = torch.exp(4 * c).unsqueeze(1)
    q = s * s + 0.25
    xt = x * torch.sqrt(q)
    e = s * (xt - self.mu) / (self.sd * self.sd + s * s)
    return ((xt - s * e) - 0.25 / q * xt) / (s * 0.5 / torch.sqrt(q))
)");
  save_torchscript(m, dir.file("edm.pt"), json::object());
  auto edm = std::make_shared<EdmSchedule>(0.002, 80.0);
  const GaussianModel exact(edm, Eigen::Map<const Eigen::VectorXd>(kMu.data(), 3),
                            Eigen::Map<const Eigen::VectorXd>(kSd.data(), 3));
  const json params = {{"path", dir.file("edm.pt")}, {"shape", {3}}, {"dtype", "float64"}, {"preconditioning", "edm"}};
  const auto model = torch_model_on(edm, params);
  const State x = batch(5, 6);
  const State v = batch(5, 7);
  State a(5, 3), b(5, 3), ja(5, 3), jb(5, 3);
  for (double t : {0.002, 0.7, 20.0, 80.0}) {
    INFO("t = " << t);
    const State xs = x * (1 + t);
    model->eps(xs, t, a);
    exact.eps(xs, t, b);
    CHECK(test::max_abs_diff(a, b) < 1e-10);
    model->eps_jvp(xs, t, v, a, ja);
    exact.eps_jvp(xs, t, v, b, jb);
    CHECK(test::max_abs_diff(ja, jb) < 1e-9);
  }
  // The v-prediction denoiser negates c_out: the same module read as "v" is off.
  json as_v = params;
  as_v["prediction"] = "v";
  torch_model_on(edm, as_v)->eps(x, 0.7, a);
  exact.eps(x, 0.7, b);
  CHECK(test::max_abs_diff(a, b) > 1e-3);
  // Settings that do not go with the preconditioning, at their JSON paths.
  json bad = params;
  bad["prediction"] = "x0";
  CHECK(test::config_error_path([&] { torch_model_on(edm, bad); }) == "model.prediction");
  bad = params;
  bad["time_input"] = "discrete";
  CHECK(test::config_error_path([&] { torch_model_on(edm, bad); }) == "model.time_input");
  bad = params;
  bad["sigma_data"] = -1.0;
  CHECK(test::config_error_path([&] { torch_model_on(edm, bad); }) == "model.sigma_data");
  bad = params;
  bad.erase("preconditioning");
  bad["sigma_data"] = 0.5;
  CHECK(test::config_error_path([&] { torch_model_on(edm, bad); }) == "model.sigma_data");
}

TEST_CASE("A network evaluated at another time converts its output at the step's time", "[torch]") {
  // eps_rows_retimed(x, t, t_net): the network runs at t_net (diffusers' rounded timestep)
  // and an x0 or v output becomes eps with the coefficients at t, as diffusers converts.
  TempDir dir;
  const GaussianModel exact = exact_model();
  const State x = batch(4, 7);
  const VpLinearSchedule sch;
  for (const std::string prediction : {"eps", "x0", "v"}) {
    save_torchscript(gaussian_module(prediction), dir.file("r" + prediction + ".pt"), json::object());
    const auto model = torch_model(
        {{"path", dir.file("r" + prediction + ".pt")}, {"shape", {3}}, {"dtype", "float64"}, {"prediction", prediction}});
    const double t = 0.43, t_net = 0.47;
    State got(4, 3), net_eps(4, 3);
    model->eps_rows_retimed(x, t, t_net, ModelRows{}, got);
    // The network's raw output at t_net, converted with t's alpha and sigma.
    exact.eps(x, t_net, net_eps);
    const ScheduleAt at_net = sch.at(t_net), at_t = sch.at(t);
    State raw = net_eps;
    if (prediction == "x0") raw = (x - at_net.sigma * net_eps) / at_net.alpha;
    if (prediction == "v") raw = at_net.alpha * net_eps - at_net.sigma * (x - at_net.sigma * net_eps) / at_net.alpha;
    State expected = raw;
    if (prediction == "x0") expected = (x - at_t.alpha * raw) / at_t.sigma;
    if (prediction == "v") expected = at_t.sigma * x + at_t.alpha * raw;
    INFO(prediction);
    CHECK(test::max_abs_diff(got, expected) < 1e-10);
    if (prediction != "eps") CHECK(test::max_abs_diff(got, net_eps) > 1e-4);  // the conversion time matters
  }
}

TEST_CASE("A scripted network of integer timesteps under a diffusers scheduler config matches the transcription",
          "[torch]") {
  // The network indexes a table of alphas_cumprod with its rounded timestep (as a network
  // trained on the discrete chain sees only integers) and returns the exact eps of
  // N(kMu, diag(kSd^2)) at that step, or the v of it. DPMSolverMultistep with Karras sigmas
  // calls it at rounded timesteps while stepping with the Karras sigmas.
  enable_torch_models();
  TempDir dir;
  const json sc = {{"_class_name", "DPMSolverMultistepScheduler"}, {"beta_schedule", "scaled_linear"},
                   {"beta_start", 0.00085}, {"beta_end", 0.012}, {"use_karras_sigmas", true}};
  auto schedule = schedule_registry().create(
      translate_scheduler_config(sc, 12, "scheduler_config").schedule, "schedule");
  const auto& d = dynamic_cast<const VpDiscreteSchedule&>(*schedule);
  const test::RefTable tab = test::ref_table(d.betas());
  const long N = d.num_steps();
  for (const std::string prediction : {"epsilon", "v_prediction"}) {
    torch::jit::Module m("StepGaussian");
    m.register_buffer("mu", torch::tensor(kMu, torch::kFloat64).reshape({1, 3}));
    m.register_buffer("sd", torch::tensor(kSd, torch::kFloat64).reshape({1, 3}));
    m.register_buffer("ab", torch::tensor(tab.alphas_cumprod, torch::kFloat64));
    const std::string out = prediction == "epsilon" ? "e" : "torch.sqrt(a2) * e - torch.sqrt(s2) * (x - torch.sqrt(s2) * e) / torch.sqrt(a2)";
    m.define(R"(
def forward(self, x, t):
    n = torch.round(t).long().clamp(0, )" + std::to_string(N - 1) + R"()
    a2 = self.ab[n].unsqueeze(1)
    s2 = 1.0 - a2
    e = torch.sqrt(s2) * (x - torch.sqrt(a2) * self.mu) / (a2 * self.sd * self.sd + s2)
    return )" + out + "\n");
    save_torchscript(m, dir.file(prediction + ".pt"), json::object());
    json config = {{"scheduler_config", sc}, {"steps", 12}, {"batch", 6}, {"seed", 2},
                   {"model", {{"name", "torchscript"}, {"path", dir.file(prediction + ".pt")}, {"shape", {3}},
                              {"dtype", "float64"}}}};
    config["scheduler_config"]["prediction_type"] = prediction;
    const json native = expand_scheduler_config(config, "");
    CHECK(native["model"]["time_input"] == "discrete");
    SampleJob job = build_sample_job(parse_sample_config(native));
    const State x_T = job.x;
    run_sample_job(job);
    // The transcription, with the same network function of the integer timestep.
    const auto net = [&](const State& x, double tau) {
      const double a2 = tab.alphas_cumprod[static_cast<std::size_t>(tau)], s2 = 1 - a2;
      State e(x.rows(), 3);
      for (long r = 0; r < x.rows(); ++r)
        for (int c = 0; c < 3; ++c)
          e(r, c) = std::sqrt(s2) * (x(r, c) - std::sqrt(a2) * kMu[c]) / (a2 * kSd[c] * kSd[c] + s2);
      if (prediction == "epsilon") return e;
      return State(std::sqrt(a2) * e - std::sqrt(s2) * (x - std::sqrt(s2) * e) / std::sqrt(a2));
    };
    std::vector<double> ts, sig;
    test::ref_dpm_timesteps(tab, 12, "linspace", 0, "karras", "zero", ts, sig);
    const State want = test::ref_dpm_solver_multistep(
        x_T, ts, sig, 2, "zero", net, prediction == "epsilon" ? test::ref_x0_from_eps : test::ref_x0_from_v);
    INFO(prediction);
    CHECK(test::max_abs_diff(job.x, want) < 1e-8 * (1 + want.abs().maxCoeff()));
  }
}

TEST_CASE("An EDM network under an EDMEulerScheduler config matches the transcription of its step", "[torch]") {
  // Any network F(c_in x, c_noise) will do: diffusers' EDMEulerScheduler preconditions its
  // input and combines its output (precondition_inputs, precondition_noise,
  // precondition_outputs), and the transcription below does it with the same function.
  enable_torch_models();
  TempDir dir;
  torch::jit::Module m("AnyF");
  m.define(R"(
def forward(self, x, c):
    return torch.tanh(x) * 0.7 + 0.2 * c.unsqueeze(1) * x - 0.1
)");
  save_torchscript(m, dir.file("f.pt"), json::object());
  const auto net = [](const State& x, double c) { return State(x.tanh() * 0.7 + 0.2 * c * x - 0.1); };
  const long steps = 9;
  for (const std::string prediction : {"epsilon", "v_prediction"})
    for (const double sigma_data : {0.5, 1.0}) {
      const json sc = {{"_class_name", "EDMEulerScheduler"}, {"sigma_data", sigma_data}, {"sigma_max", 20.0},
                       {"prediction_type", prediction}};
      const json config = {{"scheduler_config", sc}, {"steps", steps}, {"batch", 4}, {"seed", 5},
                           {"model", {{"name", "torchscript"}, {"path", dir.file("f.pt")}, {"shape", {3}},
                                      {"dtype", "float64"}}}};
      SampleJob job = build_sample_job(parse_sample_config(expand_scheduler_config(config, "")));
      State x = job.x;
      run_sample_job(job);
      // set_timesteps: Karras sigmas over linspace(0, 1, steps), then 0.
      std::vector<double> sig;
      const double lo = std::pow(0.002, 1 / 7.0), hi = std::pow(20.0, 1 / 7.0);
      for (long i = 0; i < steps; ++i) sig.push_back(std::pow(hi + i / double(steps - 1) * (lo - hi), 7.0));
      sig.push_back(0.0);
      for (long i = 0; i < steps; ++i) {
        const double s = sig[static_cast<std::size_t>(i)], q = s * s + sigma_data * sigma_data;
        const State f = net(x / std::sqrt(q), 0.25 * std::log(s));
        const double c_out = (prediction == "epsilon" ? 1 : -1) * s * sigma_data / std::sqrt(q);
        const State d = sigma_data * sigma_data / q * x + c_out * f;
        x = x + (x - d) / s * (sig[static_cast<std::size_t>(i) + 1] - s);
      }
      INFO(prediction << " sigma_data " << sigma_data);
      CHECK(test::max_abs_diff(job.x, x) < 1e-10 * (1 + x.abs().maxCoeff()));
    }
}

TEST_CASE("A velocity network under a FlowMatchEulerDiscreteScheduler config matches the transcription of its step",
          "[torch]") {
  // Any velocity network will do; diffusers calls it at timestep sigma num_train_timesteps
  // and steps x + (sigma_next - sigma) v from sigma = 1 (pure noise).
  enable_torch_models();
  TempDir dir;
  torch::jit::Module m("AnyVelocity");
  m.define(R"(
def forward(self, x, t):
    return torch.tanh(x) * 0.5 - 0.3 * x + 0.001 * t.unsqueeze(1)
)");
  save_torchscript(m, dir.file("v.pt"), json::object());
  const auto net = [](const State& x, double timestep) { return State(x.tanh() * 0.5 - 0.3 * x + 0.001 * timestep); };
  const long steps = 6;
  const double shift = 3.0, N = 1000;
  const json sc = {{"_class_name", "FlowMatchEulerDiscreteScheduler"}, {"shift", shift}};
  const json config = {{"scheduler_config", sc}, {"steps", steps}, {"batch", 4}, {"seed", 7},
                       {"model", {{"name", "torchscript"}, {"path", dir.file("v.pt")}, {"shape", {3}},
                                  {"dtype", "float64"}}}};
  SampleJob job = build_sample_job(parse_sample_config(expand_scheduler_config(config, "")));
  State x = job.x;
  run_sample_job(job);
  const auto shifted = [&](double u) { return shift * u / (1 + (shift - 1) * u); };
  std::vector<double> sig;
  for (double ts : test::lin(shifted(1.0) * N, shifted(1 / N) * N, steps)) sig.push_back(shifted(ts / N));
  sig.push_back(0.0);
  for (long i = 0; i < steps; ++i) {
    const auto k = static_cast<std::size_t>(i);
    x = x + (sig[k + 1] - sig[k]) * net(x, sig[k] * N);
  }
  CHECK(test::max_abs_diff(job.x, x) < 1e-10 * (1 + x.abs().maxCoeff()));
}

TEST_CASE("A v-prediction network under a zero-terminal-SNR DDIMScheduler config starts from pure noise as diffusers does",
          "[torch]") {
  // rescale_betas_zero_snr with trailing spacing: the first timestep, 999, has alpha_bar = 0.
  // diffusers' DDIM step there takes x0 = sqrt(ab) x - sqrt(1 - ab) v = -v and eps = x, which
  // only a v (or x0) network gives; the network below is the exact v of N(kMu, diag(kSd^2))
  // at its integer timestep, written without dividing by alpha.
  enable_torch_models();
  TempDir dir;
  for (const bool clip : {false, true}) {
    const json sc = {{"_class_name", "DDIMScheduler"}, {"beta_schedule", "scaled_linear"}, {"beta_start", 0.00085},
                     {"beta_end", 0.012}, {"rescale_betas_zero_snr", true}, {"timestep_spacing", "trailing"},
                     {"prediction_type", "v_prediction"}, {"clip_sample", clip}};
    const long steps = 8;
    auto schedule = schedule_registry().create(translate_scheduler_config(sc, steps, "scheduler_config").schedule,
                                               "schedule");
    const auto& d = dynamic_cast<const VpDiscreteSchedule&>(*schedule);
    const test::RefTable tab = test::ref_table(d.betas());
    REQUIRE(tab.alphas_cumprod.back() == 0.0);
    const long N = d.num_steps();
    torch::jit::Module m("StepV");
    m.register_buffer("mu", torch::tensor(kMu, torch::kFloat64).reshape({1, 3}));
    m.register_buffer("sd", torch::tensor(kSd, torch::kFloat64).reshape({1, 3}));
    m.register_buffer("ab", torch::tensor(tab.alphas_cumprod, torch::kFloat64));
    m.define(R"(
def forward(self, x, t):
    n = torch.round(t).long().clamp(0, )" + std::to_string(N - 1) + R"()
    a = torch.sqrt(self.ab[n]).unsqueeze(1)
    s = torch.sqrt(1.0 - self.ab[n]).unsqueeze(1)
    var = a * a * self.sd * self.sd + s * s
    e = s * (x - a * self.mu) / var
    x0 = self.mu + a * self.sd * self.sd * (x - a * self.mu) / var
    return a * e - s * x0
)");
    save_torchscript(m, dir.file("v.pt"), json::object());
    const json config = {{"scheduler_config", sc}, {"steps", steps}, {"batch", 5}, {"seed", 4},
                         {"model", {{"name", "torchscript"}, {"path", dir.file("v.pt")}, {"shape", {3}},
                                    {"dtype", "float64"}}}};
    SampleJob job = build_sample_job(parse_sample_config(expand_scheduler_config(config, "")));
    REQUIRE(job.times.front() == 1.0);
    State x = job.x;
    run_sample_job(job);
    // DDIMScheduler.step, eta 0: trailing timesteps round(arange(N, 0, -N/steps)) - 1.
    const auto v_net = [&](const State& y, long tau) {
      const double ab = tab.alphas_cumprod[static_cast<std::size_t>(tau)], a = std::sqrt(ab), sg = std::sqrt(1 - ab);
      State out(y.rows(), 3);
      for (long r = 0; r < y.rows(); ++r)
        for (int c = 0; c < 3; ++c) {
          const double var = a * a * kSd[c] * kSd[c] + sg * sg;
          const double e = sg * (y(r, c) - a * kMu[c]) / var;
          const double x0 = kMu[c] + a * kSd[c] * kSd[c] * (y(r, c) - a * kMu[c]) / var;
          out(r, c) = a * e - sg * x0;
        }
      return out;
    };
    std::vector<long> taus;
    for (double v : test::arange_float(static_cast<double>(N), 0, -static_cast<double>(N) / steps))
      taus.push_back(static_cast<long>(test::rnd(v)) - 1);
    for (std::size_t k = 0; k < taus.size(); ++k) {
      const long tau = taus[k], prev = tau - N / steps;
      const double ab = tab.alphas_cumprod[static_cast<std::size_t>(tau)];
      const double ab_prev = prev >= 0 ? tab.alphas_cumprod[static_cast<std::size_t>(prev)] : 1.0;
      const State v = v_net(x, tau);
      State x0 = std::sqrt(ab) * x - std::sqrt(1 - ab) * v;
      const State eps = std::sqrt(ab) * v + std::sqrt(1 - ab) * x;
      if (clip) x0 = x0.cwiseMax(-1.0).cwiseMin(1.0);
      x = std::sqrt(ab_prev) * x0 + std::sqrt(1 - ab_prev) * eps;
    }
    INFO("clip_sample " << clip);
    CHECK(test::max_abs_diff(job.x, x) < 1e-10 * (1 + x.abs().maxCoeff()));
  }
}

TEST_CASE("batches split by max_batch give the same eps", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  const auto whole = torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "float64"}});
  const auto split = torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "float64"}, {"max_batch", 3}});
  const State x = batch(10, 3);
  State a(10, 3), b(10, 3);
  whole->eps(x, 0.3, a);
  split->eps(x, 0.3, b);
  CHECK(test::max_abs_diff(a, b) == 0.0);
}

TEST_CASE("autograd Jacobian-vector products match the closed form", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  const auto model = torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "float64"}});
  REQUIRE(model->has_jvp());
  const GaussianModel exact = exact_model();
  const State x = batch(6, 4), v = test::standard_normal_rows(6, 3, 5);
  State e1(6, 3), j1(6, 3), e2(6, 3), j2(6, 3);
  for (double t : {0.01, 0.4}) {
    model->eps_jvp(x, t, v, e1, j1);
    exact.eps_jvp(x, t, v, e2, j2);
    CHECK(test::max_abs_diff(e1, e2) < 1e-12);
    CHECK(test::max_abs_diff(j1, j2) < 1e-12);
  }
}

TEST_CASE("sampling through the torch model equals sampling the analytic model", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  for (const char* solver : {"ddim", "dpm_solver", "euler_maruyama"}) {
    json config = default_sample_config();
    config["solver"] = {{"name", solver}};
    config["grid"] = {{"name", "logSNR"}, {"steps", 12}, {"t_end", 1e-3}};
    config["batch"] = 9;
    config["model"] = {{"name", "gaussian"}, {"mean", kMu}, {"std", kSd}};
    SampleJob analytic = build_sample_job(parse_sample_config(config));
    run_sample_job(analytic);
    enable_torch_models();
    config["model"] = {{"name", "torchscript"}, {"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "float64"}};
    SampleJob network = build_sample_job(parse_sample_config(config));
    run_sample_job(network);
    INFO(solver);
    CHECK(test::max_abs_diff(analytic.x, network.x) < 1e-10);
  }
}

TEST_CASE("float32 networks agree with the exact eps to float32 rounding", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  const auto model = torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}});
  const GaussianModel exact = exact_model();
  const State x = batch(8, 6);
  State a(8, 3), b(8, 3);
  model->eps(x, 0.5, a);
  exact.eps(x, 0.5, b);
  CHECK(test::max_abs_diff(a, b) < 1e-5);
  CHECK(test::max_abs_diff(a, b) > 0.0);  // it really ran in float32
}

TEST_CASE("metadata in the file fills in unset options", "[torch]") {
  TempDir dir;
  save_torchscript(gaussian_module("x0"), dir.file("g.pt"),
                   {{"shape", {3}}, {"prediction", "x0"}, {"time_input", "continuous"}});
  const auto model = torch_model({{"path", dir.file("g.pt")}, {"dtype", "float64"}});
  CHECK(model->dim() == 3);
  CHECK(model->shape() == std::vector<int>{3});
  const GaussianModel exact = exact_model();
  const State x = batch(4, 7);
  State a(4, 3), b(4, 3);
  model->eps(x, 0.2, a);
  exact.eps(x, 0.2, b);
  CHECK(test::max_abs_diff(a, b) < 1e-10);
}

TEST_CASE("discrete time input feeds t N - 1", "[torch]") {
  TempDir dir;
  torch::jit::Module m("Echo");
  m.define(R"(
def forward(self, x, t):
    return x * 0.0 + t.unsqueeze(1)
)");
  save_torchscript(m, dir.file("echo.pt"), json::object());
  enable_torch_models();
  BuildContext ctx;
  ctx.schedule = std::make_shared<VpDiscreteSchedule>(VpDiscreteSchedule::linear(1e-4, 0.02, 1000));
  const auto model = model_registry().create(
      {{"name", "torchscript"}, {"path", dir.file("echo.pt")}, {"shape", {2}}, {"dtype", "float64"},
       {"time_input", "discrete"}},
      "model", ctx);
  State x = State::Zero(2, 2), out(2, 2);
  model->eps(x, 0.5, out);
  CHECK(out(0, 0) == Approx(499.0).margin(1e-9));
  model->eps(x, 1.0, out);
  CHECK(out(1, 1) == Approx(999.0).margin(1e-9));
}

TEST_CASE("bad model files and options give errors that name them", "[torch]") {
  TempDir dir;
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("missing.pt")}, {"shape", {3}}}),
                    Catch::Contains("missing.pt") && Catch::Contains("not found"));
  {
    std::ofstream(dir.file("junk.pt")) << "not a zip archive";
    CHECK_THROWS_WITH(torch_model({{"path", dir.file("junk.pt")}, {"shape", {3}}}),
                      Catch::Contains("junk.pt") && Catch::Contains("not a loadable TorchScript"));
  }
  save_torchscript(gaussian_module(), dir.file("g.pt"), json::object());
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("g.pt")}}), Catch::Contains("shape"));
  CHECK(test::config_error_path([&] { torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"device", "gpu"}}); }) ==
        "model.device");
  if (!torch::cuda::is_available())
    CHECK(test::config_error_path([&] {
            torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"device", "cuda"}});
          }) == "model.device");
  CHECK(test::config_error_path([&] { torch_model({{"path", dir.file("g.pt")}, {"shape", {3}}, {"dtype", "half"}}); }) ==
        "model.dtype");

  torch::jit::Module wrong("Wrong");
  wrong.define(R"(
def forward(self, x, t):
    return x[:, :2]
)");
  save_torchscript(wrong, dir.file("wrong.pt"), json::object());
  // The dry run at load finds it; without the dry run, the first call does.
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("wrong.pt")}, {"shape", {3}}}),
                    Catch::Contains("wrong.pt") && Catch::Contains("dry run") && Catch::Contains("shape [1, 2]") &&
                        Catch::Contains("expected [1, 3]"));
  TorchModelOptions no_dry_run;
  no_dry_run.path = dir.file("wrong.pt");
  no_dry_run.shape = {3};
  no_dry_run.dry_run = false;
  const auto w = std::make_unique<TorchScriptModel>(linear(), no_dry_run);
  State x = batch(2, 8), out(2, 3);
  CHECK_THROWS_WITH(w->eps(x, 0.5, out), Catch::Contains("wrong.pt") && Catch::Contains("shape [2, 2]") &&
                                             Catch::Contains("expected [2, 3]"));

  torch::jit::Module integer("Integer");
  integer.define(R"(
def forward(self, x, t):
    return x.long()
)");
  save_torchscript(integer, dir.file("int.pt"), json::object());
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("int.pt")}, {"shape", {3}}}),
                    Catch::Contains("int.pt") && Catch::Contains("dry run") && Catch::Contains("dtype"));
  no_dry_run.path = dir.file("int.pt");
  const auto i = std::make_unique<TorchScriptModel>(linear(), no_dry_run);
  CHECK_THROWS_WITH(i->eps(x, 0.5, out), Catch::Contains("int.pt") && Catch::Contains("dtype"));
}

TEST_CASE("a model scripted and saved by PyTorch runs through the C++ loader", "[torch][python]") {
  const std::string python = DIFFSDE_PYTHON3;
  if (python.empty() || std::system((python + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0) {
    WARN("python3 with torch not found: the PyTorch-to-C++ interop check did not run");
    return;
  }
  TempDir dir;
  const std::string script = std::string(DIFFSDE_SOURCE_DIR) + "/tests/torch/script_gaussian_model.py";
  const std::string cmd = python + " " + script + " " + dir.file("py.pt");
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto model = torch_model({{"path", dir.file("py.pt")}, {"dtype", "float64"}});  // shape from metadata
  const GaussianModel exact = exact_model();
  const State x = batch(5, 9);
  State a(5, 3), b(5, 3);
  for (double t : {0.02, 0.7}) {
    model->eps(x, t, a);
    exact.eps(x, t, b);
    CHECK(test::max_abs_diff(a, b) < 1e-12);
  }

  // And the other way: a module built in C++ loads and runs in PyTorch.
  save_torchscript(gaussian_module(), dir.file("cpp.pt"), {{"shape", {3}}});
  const std::string check = python + " -c \"import torch; m = torch.jit.load('" + dir.file("cpp.pt") +
                            "'); x = torch.zeros(2, 3, dtype=torch.float64); t = torch.full((2,), 0.5, "
                            "dtype=torch.float64); assert m(x, t).shape == (2, 3)\"";
  CHECK(std::system(check.c_str()) == 0);
}

TEST_CASE("a conditional network gets its labels by name, row by row", "[torch][cond]") {
  TempDir dir;
  save_torchscript(label_module(), dir.file("label.pt"), json::object());
  const std::vector<std::int64_t> labels = {3, 0, 9, 10, 5};
  const auto cond = std::make_shared<Conditioning>();
  cond->add(ModelInput::ints("y", {}, labels));
  const State x = batch(5, 11);
  for (int max_batch : {0, 2}) {
    INFO("max_batch " << max_batch);
    const auto model = shared(torch_model({{"path", dir.file("label.pt")}, {"shape", {3}}, {"dtype", "float64"},
                                           {"max_batch", max_batch}, {"inputs", kLabelInputs}}));
    const auto inputs = model->inputs();
    REQUIRE(inputs.size() == 1);
    CHECK(inputs[0].name == "y");
    CHECK(inputs[0].type == InputType::int64);
    CHECK(inputs[0].shape.empty());
    CHECK(inputs[0].classes == 10);
    CHECK(inputs[0].has_null_label);
    CHECK(inputs[0].null_label == 10);
    CHECK_FALSE(inputs[0].optional);
    const ConditionedModel conditioned(model, cond, 5);
    State out(5, 3);
    for (double t : {0.1, 0.75}) {
      conditioned.eps_rows(x, t, ModelRows{}, out);
      for (long r = 0; r < 5; ++r)
        for (long j = 0; j < 3; ++j)
          CHECK(out(r, j) == label_eps(x(r, j), static_cast<double>(labels[static_cast<std::size_t>(r)]), t));
    }
    // A block of rows 2..4 of the run takes labels 2..4.
    ModelRows rows;
    rows.first_sample = 2;
    State part(3, 3);
    conditioned.eps_rows(x.middleRows(2, 3), 0.3, rows, part);
    for (long r = 0; r < 3; ++r)
      for (long j = 0; j < 3; ++j)
        CHECK(part(r, j) == label_eps(x(2 + r, j), static_cast<double>(labels[static_cast<std::size_t>(2 + r)]), 0.3));
    // One shared label for every row.
    const auto one = std::make_shared<Conditioning>();
    one->add(ModelInput::ints("y", {}, {7}));
    ConditionedModel(model, one, 5).eps_rows(x, 0.4, ModelRows{}, out);
    for (long r = 0; r < 5; ++r)
      for (long j = 0; j < 3; ++j) CHECK(out(r, j) == label_eps(x(r, j), 7.0, 0.4));
    // The Jacobian-vector product sees the same inputs: J = 0.5 I.
    const State v = test::standard_normal_rows(5, 3, 12);
    State e(5, 3), jv(5, 3);
    conditioned.eps_jvp_rows(x, 0.6, ModelRows{}, v, e, jv);
    for (long r = 0; r < 5; ++r)
      for (long j = 0; j < 3; ++j) {
        CHECK(e(r, j) == label_eps(x(r, j), static_cast<double>(labels[static_cast<std::size_t>(r)]), 0.6));
        CHECK(jv(r, j) == v(r, j) * 0.5);
      }
  }
}

TEST_CASE("a float embedding input is passed in the network's dtype", "[torch][cond]") {
  TempDir dir;
  save_torchscript(embedding_module(), dir.file("emb.pt"), json::object());
  const State x = batch(5, 13), emb = test::standard_normal_rows(5, 3, 14);
  std::vector<double> values(emb.data(), emb.data() + emb.size());  // row-major
  const auto cond = std::make_shared<Conditioning>();
  cond->add(ModelInput::floats("emb", {3}, values));
  const auto model = shared(torch_model({{"path", dir.file("emb.pt")}, {"shape", {3}}, {"dtype", "float64"},
                                         {"max_batch", 2}, {"inputs", kEmbeddingInputs}}));
  REQUIRE(model->inputs().size() == 1);
  CHECK(model->inputs()[0].type == InputType::float64);
  CHECK(model->inputs()[0].shape == std::vector<long>{3});
  State out(5, 3);
  ConditionedModel(model, cond, 5).eps_rows(x, 0.25, ModelRows{}, out);
  for (long r = 0; r < 5; ++r)
    for (long j = 0; j < 3; ++j) CHECK(out(r, j) == x(r, j) * 0.5 + emb(r, j) * 0.25 + 0.25);

  // float32: the embedding is converted to the network's dtype too.
  const auto single = shared(torch_model({{"path", dir.file("emb.pt")}, {"shape", {3}}, {"inputs", kEmbeddingInputs}}));
  ConditionedModel(single, cond, 5).eps_rows(x, 0.25, ModelRows{}, out);
  for (long r = 0; r < 5; ++r)
    for (long j = 0; j < 3; ++j) CHECK(out(r, j) == Approx(x(r, j) * 0.5 + emb(r, j) * 0.25 + 0.25).margin(1e-5));
}

TEST_CASE("inputs are declared by the file's metadata when the config gives none", "[torch][cond]") {
  TempDir dir;
  save_torchscript(label_module(), dir.file("label.pt"), {{"shape", {3}}, {"inputs", kLabelInputs}});
  const auto model = shared(torch_model({{"path", dir.file("label.pt")}, {"dtype", "float64"}}));
  REQUIRE(model->inputs().size() == 1);
  CHECK(model->inputs()[0].classes == 10);
  const auto cond = std::make_shared<Conditioning>();
  cond->add(ModelInput::ints("y", {}, {2, 4}));
  const State x = batch(2, 15);
  State out(2, 3);
  ConditionedModel(model, cond, 2).eps(x, 0.5, out);
  CHECK(out(1, 2) == label_eps(x(1, 2), 4.0, 0.5));
  // A label outside the declared classes is refused before the network runs.
  const auto bad = std::make_shared<Conditioning>();
  bad->add(ModelInput::ints("y", {}, {99}));
  CHECK_THROWS_WITH(ConditionedModel(model, bad, 2), Catch::Contains("y") && Catch::Contains("10 classes"));

  // Malformed metadata names the file and the key.
  save_torchscript(label_module(), dir.file("badmeta.pt"),
                   {{"shape", {3}}, {"inputs", json::array({{{"name", "y"}, {"type", "int32"}}})}});
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("badmeta.pt")}}),
                    Catch::Contains("badmeta.pt") && Catch::Contains("inputs[0].type"));
  // And malformed config inputs are config errors at their JSON path.
  CHECK(test::config_error_path([&] {
          torch_model({{"path", dir.file("label.pt")}, {"inputs", json::array({{{"name", "y"}, {"type", "int64"},
                                                                                 {"shape", {0}}}})}});
        }) == "model.inputs[0].shape");
  CHECK(test::config_error_path([&] {
          torch_model({{"path", dir.file("label.pt")}, {"inputs", json::array({{{"name", "y"}, {"type", "int64"},
                                                                                 {"clases", 3}}})}});
        }) == "model.inputs[0].clases");
}

TEST_CASE("declared inputs and forward's arguments must agree", "[torch][cond]") {
  TempDir dir;
  save_torchscript(label_module(), dir.file("label.pt"), json::object());
  save_torchscript(embedding_module(), dir.file("emb.pt"), json::object());
  // Declared, but forward has no such argument.
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("emb.pt")}, {"shape", {3}}, {"inputs", kLabelInputs}}),
                    Catch::Contains("emb.pt") && Catch::Contains("no argument 'y'") &&
                        Catch::Contains("forward(x, t, emb)"));
  // forward needs an argument that nobody declared: the old "forward() is missing value for
  // argument 'y'" at step 0 is now an error at load naming it.
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("label.pt")}, {"shape", {3}}}),
                    Catch::Contains("label.pt") && Catch::Contains("argument 'y'") &&
                        Catch::Contains("`inputs`") && Catch::Contains("metadata"));
  CHECK(test::config_error_path([&] { torch_model({{"path", dir.file("label.pt")}, {"shape", {3}}}); }) == "model");
  // A declared optional input needs a default in forward.
  json optional = kLabelInputs;
  optional[0]["optional"] = true;
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("label.pt")}, {"shape", {3}}, {"inputs", optional}}),
                    Catch::Contains("label.pt") && Catch::Contains("optional") && Catch::Contains("default"));
}

TEST_CASE("an optional input may be left out; forward then takes its default", "[torch][cond]") {
  TempDir dir;
  torch::jit::Module m("OptionalScale");
  m.define(R"(
def forward(self, x, t, scale: Optional[Tensor] = None, y: int = 0):
    out = x * 0.5 + t.unsqueeze(1)
    if scale is not None:
        out = out * scale
    return out
)");
  save_torchscript(m, dir.file("opt.pt"), json::object());
  json inputs = json::array({{{"name", "scale"}, {"type", "float64"}, {"shape", {3}}, {"optional", true}}});
  const auto model = shared(torch_model({{"path", dir.file("opt.pt")}, {"shape", {3}}, {"dtype", "float64"},
                                         {"inputs", inputs}}));
  const State x = batch(3, 16);
  State out(3, 3);
  model->eps(x, 0.5, out);  // no inputs: scale takes its default
  CHECK(out(2, 1) == x(2, 1) * 0.5 + 0.5);
  const auto cond = std::make_shared<Conditioning>();
  cond->add(ModelInput::floats("scale", {3}, {2.0, 2.0, 2.0}));
  ConditionedModel(model, cond, 3).eps(x, 0.5, out);
  CHECK(out(2, 1) == (x(2, 1) * 0.5 + 0.5) * 2.0);
}

TEST_CASE("a network that fails its dry run is an error at load naming the file", "[torch][cond]") {
  TempDir dir;
  torch::jit::Module raises("Raises");
  raises.define(R"(
def forward(self, x, t, y):
    assert bool(y.sum() != 0), "labels must be positive"
    return x
)");
  save_torchscript(raises, dir.file("raises.pt"), json::object());
  try {
    torch_model({{"path", dir.file("raises.pt")}, {"shape", {3}}, {"inputs", kLabelInputs}});
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(e.path() == "model");
    CHECK(what.find("raises.pt: forward(x, t, y) failed on a dry run with one row: ") != std::string::npos);
    CHECK(what.find("labels must be positive") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);  // one line, no traceback
  }
  // An error inside an operation (shapes that do not broadcast) is one line too.
  torch::jit::Module mismatch("Mismatch");
  mismatch.define(R"(
def forward(self, x, t, emb):
    return x + emb
)");
  save_torchscript(mismatch, dir.file("mismatch.pt"), json::object());
  const json emb2 = json::array({{{"name", "emb"}, {"type", "float64"}, {"shape", {2}}}});
  try {
    torch_model({{"path", dir.file("mismatch.pt")}, {"shape", {3}}, {"inputs", emb2}});
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("mismatch.pt: forward(x, t, emb) failed on a dry run with one row: ") != std::string::npos);
    CHECK(what.find("size of tensor") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
  // forward without t.
  torch::jit::Module no_t("NoT");
  no_t.define(R"(
def forward(self, x):
    return x
)");
  save_torchscript(no_t, dir.file("no_t.pt"), json::object());
  CHECK_THROWS_WITH(torch_model({{"path", dir.file("no_t.pt")}, {"shape", {3}}}),
                    Catch::Contains("no_t.pt") && Catch::Contains("x, t"));
}

TEST_CASE("eps without inputs on a model that needs one names the input", "[torch][cond]") {
  TempDir dir;
  save_torchscript(label_module(), dir.file("label.pt"), json::object());
  const auto model = torch_model({{"path", dir.file("label.pt")}, {"shape", {3}}, {"inputs", kLabelInputs}});
  const State x = batch(2, 17);
  State out(2, 3), jv(2, 3);
  CHECK_THROWS_AS(model->eps(x, 0.5, out), Error);
  CHECK_THROWS_WITH(model->eps(x, 0.5, out), Catch::Contains("label.pt") && Catch::Contains("input 'y'"));
  CHECK_THROWS_WITH(model->eps_jvp(x, 0.5, x, out, jv), Catch::Contains("input 'y'"));
  // Wrongly typed inputs given directly are refused too.
  Conditioning floats;
  floats.add(ModelInput::floats("y", {}, {1.0, 2.0}));
  ModelRows rows;
  rows.inputs = &floats;
  CHECK_THROWS_WITH(model->eps_rows(x, 0.5, rows, out), Catch::Contains("input 'y' is float64"));
}

TEST_CASE("conditional networks scripted by PyTorch run with their inputs", "[torch][python][cond]") {
  const std::string python = DIFFSDE_PYTHON3;
  if (python.empty() || std::system((python + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0) {
    WARN("python3 with torch not found: the conditional PyTorch modules were not checked");
    return;
  }
  TempDir dir;
  const std::string script = std::string(DIFFSDE_SOURCE_DIR) + "/tests/torch/script_conditional_models.py";
  REQUIRE(std::system((python + " " + script + " " + dir.path.string()).c_str()) == 0);
  const State x = batch(4, 18);
  State out(4, 3);
  // label.pt declares y in its metadata.
  const auto label = shared(torch_model({{"path", dir.file("label.pt")}, {"dtype", "float64"}}));
  const std::vector<std::int64_t> labels = {1, 0, 10, 6};
  const auto cond = std::make_shared<Conditioning>();
  cond->add(ModelInput::ints("y", {}, labels));
  ConditionedModel(label, cond, 4).eps(x, 0.2, out);
  for (long r = 0; r < 4; ++r)
    for (long j = 0; j < 3; ++j)
      CHECK(out(r, j) == label_eps(x(r, j), static_cast<double>(labels[static_cast<std::size_t>(r)]), 0.2));
  // emb.pt: emb declared by the config, its optional scale left out, then given.
  json inputs = kEmbeddingInputs;
  inputs.push_back({{"name", "scale"}, {"type", "float64"}, {"shape", {3}}, {"optional", true}});
  const auto emb_model = shared(torch_model({{"path", dir.file("emb.pt")}, {"dtype", "float64"}, {"inputs", inputs}}));
  const State emb = test::standard_normal_rows(4, 3, 19);
  const auto emb_cond = std::make_shared<Conditioning>();
  emb_cond->add(ModelInput::floats("emb", {3}, std::vector<double>(emb.data(), emb.data() + emb.size())));
  ConditionedModel(emb_model, emb_cond, 4).eps(x, 0.2, out);
  for (long r = 0; r < 4; ++r)
    for (long j = 0; j < 3; ++j) CHECK(out(r, j) == x(r, j) * 0.5 + emb(r, j) * 0.25 + 0.2);
  emb_cond->add(ModelInput::floats("scale", {3}, {3.0, 3.0, 3.0}));
  ConditionedModel(emb_model, emb_cond, 4).eps(x, 0.2, out);
  CHECK(out(3, 0) == (x(3, 0) * 0.5 + emb(3, 0) * 0.25 + 0.2) * 3.0);
}
