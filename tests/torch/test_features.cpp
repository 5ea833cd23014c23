// A classifier's feature map and the sweep metric feature_frechet, tested with a module
// whose `features` is linear and known: f(x) = 2 x[:, :2]. The Fréchet distance of a
// shifted copy of a sample set is then exactly 4 |shift[:2]|^2.
#include <torch/script.h>
// torch before Catch2: glog's CHECK would replace Catch2's.
#include <catch2/catch.hpp>

#include <cmath>

#include "diffsde/error.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/sweep.hpp"
#include "support/exact.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

using diffsde::test::TempDir;

// Features 2 x[:, 0] and 2 x[:, 1] of samples of shape [1, 2, 2] (4 values).
torch::jit::Module linear_features() {
  torch::jit::Module m("LinearFeatures");
  m.define(R"(
def features(self, x):
    h = x.reshape(x.shape[0], -1)
    return 2.0 * h[:, 0:2]

def forward(self, x):
    return self.features(x)
)");
  return m;
}

// Rows with entries on a 1/8 grid in [-1, 1]: exact in float32, so 2 x is exact too.
State grid_rows(long n, std::uint64_t seed) {
  State x = test::standard_normal_rows(n, 4, seed);
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index k = 0; k < x.cols(); ++k) x(i, k) = std::round(std::tanh(x(i, k)) * 8.0) / 8.0;
  return x;
}

std::unique_ptr<SweepMetric> make_metric(const json& params, const TempDir& dir, long batch) {
  json object = params;
  object["name"] = "feature_frechet";
  auto metric = metric_registry().create(object, "sweep.metrics[0]", BuildContext{nullptr, dir.path.string()});
  MetricSetup setup;
  setup.model = std::make_shared<GaussianModel>(std::make_shared<VpLinearSchedule>(), Eigen::VectorXd::Zero(4),
                                                Eigen::VectorXd::Ones(4));
  setup.batch = batch;
  setup.path = "sweep.metrics[0]";
  setup.base_dir = dir.path.string();
  metric->prepare(setup);
  return metric;
}

double metric_value(const SweepMetric& metric, const State& samples) {
  const GaussianModel model(std::make_shared<VpLinearSchedule>(), Eigen::VectorXd::Zero(4), Eigen::VectorXd::Ones(4));
  json values = json::object();
  metric.compute(MetricInput{model, samples, nullptr}, values);
  return values.at("feature_frechet").get<double>();
}

}  // namespace

TEST_CASE("a classifier's features load from TorchScript and are split by max_batch", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_features(), dir.file("f.pt"), json{{"shape", {1, 2, 2}}});
  const State x = grid_rows(11, 1);
  for (long max_batch : {500L, 3L}) {
    FeatureMapOptions o;
    o.path = dir.file("f.pt");
    o.max_batch = max_batch;
    const State f = load_feature_map(o)(x);
    REQUIRE(f.rows() == 11);
    REQUIRE(f.cols() == 2);
    CHECK(test::max_abs_diff(f, 2.0 * x.leftCols(2)) == 0.0);
  }
}

TEST_CASE("feature maps fail clearly on a file without features and on the wrong width", "[torch]") {
  enable_torch_models();
  TempDir dir;
  torch::jit::Module plain("Plain");
  plain.define("def forward(self, x):\n    return x\n");
  save_torchscript(plain, dir.file("plain.pt"), json{{"shape", {4}}});
  FeatureMapOptions o;
  o.path = dir.file("plain.pt");
  CHECK_THROWS_WITH(load_feature_map(o), Catch::Contains("plain.pt") && Catch::Contains("no method 'features'"));

  save_torchscript(linear_features(), dir.file("f.pt"), json::object());
  o.path = dir.file("f.pt");
  CHECK_THROWS_WITH(load_feature_map(o), Catch::Contains("input shape"));
  o.shape = {1, 2, 2};
  const FeatureMap f = load_feature_map(o);
  CHECK_THROWS_WITH(f(State::Zero(3, 5)), Catch::Contains("f.pt") && Catch::Contains("4 values per sample"));
}

TEST_CASE("feature_frechet of a shifted copy of the data is 4 |shift[:2]|^2", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_features(), dir.file("f.pt"), json{{"shape", {1, 2, 2}}});
  const State data = grid_rows(400, 2);
  write_npy(dir.file("data.npy"), data);
  const auto metric =
      make_metric({{"classifier", "f.pt"}, {"data", {{"name", "npy"}, {"path", "data.npy"}}}, {"clip", false}}, dir, 400);

  CHECK(std::abs(metric_value(*metric, data)) < 1e-12);
  State shifted = data;
  shifted.col(0).array() += 0.25;
  shifted.col(1).array() -= 0.5;
  shifted.col(3).array() += 7.0;  // not a feature
  CHECK(metric_value(*metric, shifted) == Approx(4.0 * (0.25 * 0.25 + 0.5 * 0.5)).epsilon(1e-12));

  // A different set: the features' Fréchet distance, 4 times that of the first two columns.
  const State other = grid_rows(300, 3);
  CHECK(metric_value(*metric, other) ==
        Approx(4.0 * frechet_distance(State(other.leftCols(2)), State(data.leftCols(2)))).epsilon(1e-10));
}

TEST_CASE("feature_frechet clips samples to [-1, 1] unless told not to", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_features(), dir.file("f.pt"), json{{"shape", {1, 2, 2}}});
  State data = grid_rows(200, 4);
  data = data.sign();  // every entry -1 or 1 (0 stays 0)
  write_npy(dir.file("data.npy"), data);
  const json spec = {{"classifier", "f.pt"}, {"data", {{"name", "npy"}, {"path", "data.npy"}}}};
  const State tripled = 3.0 * data;
  CHECK(std::abs(metric_value(*make_metric(spec, dir, 200), tripled)) < 1e-12);
  json unclipped = spec;
  unclipped["clip"] = false;
  CHECK(metric_value(*make_metric(unclipped, dir, 200), tripled) ==
        Approx(4.0 * frechet_distance(State(tripled.leftCols(2)), State(data.leftCols(2)))).epsilon(1e-10));
}

TEST_CASE("feature_frechet names its JSON path when the data do not fit the model", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_features(), dir.file("f.pt"), json{{"shape", {1, 2, 2}}});
  write_npy(dir.file("wide.npy"), State(State::Zero(5, 6)));
  CHECK_THROWS_WITH(
      make_metric({{"classifier", "f.pt"}, {"data", {{"name", "npy"}, {"path", "wide.npy"}}}}, dir, 5),
      Catch::Contains("sweep.metrics[0].data") && Catch::Contains("6 values per sample"));
  write_npy(dir.file("data.npy"), State(State::Zero(5, 4)));
  CHECK_THROWS_WITH(make_metric({{"classifier", "missing.pt"}, {"data", {{"name", "npy"}, {"path", "data.npy"}}}}, dir, 5),
                    Catch::Contains("missing.pt"));
}
