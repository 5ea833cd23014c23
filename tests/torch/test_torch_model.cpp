// The TorchScript model adapter, tested against exact answers: a TorchScript module
// that computes the closed-form eps of Gaussian data must reproduce the analytic
// GaussianModel through the whole stack (eps, Jacobian-vector products, sampling).
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
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"
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
  const auto w = torch_model({{"path", dir.file("wrong.pt")}, {"shape", {3}}});
  State x = batch(2, 8), out(2, 3);
  CHECK_THROWS_WITH(w->eps(x, 0.5, out), Catch::Contains("wrong.pt") && Catch::Contains("shape [2, 2]") &&
                                             Catch::Contains("expected [2, 3]"));

  torch::jit::Module integer("Integer");
  integer.define(R"(
def forward(self, x, t):
    return x.long()
)");
  save_torchscript(integer, dir.file("int.pt"), json::object());
  const auto i = torch_model({{"path", dir.file("int.pt")}, {"shape", {3}}});
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
