// A classifier's feature map and the sweep metrics feature_frechet (also per class) and
// accuracy, tested with modules that are linear and known: features f(x) = 2 x[:, :2], so
// the Fréchet distance of a shifted copy of a sample set is exactly 4 |shift[:2]|^2, and
// logits 2 x[:, :3], so each sample's predicted class is known.
#include <torch/script.h>
// torch before Catch2: glog's CHECK would replace Catch2's.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "diffsde/conditioning.hpp"
#include "diffsde/error.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/model.hpp"
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

namespace {

// Logits 2 x[:, :3] of samples of shape [1, 2, 2]: 3 classes, the predicted one the
// largest of the first three values.
torch::jit::Module linear_logits() {
  torch::jit::Module m("LinearLogits");
  m.define(R"(
def forward(self, x):
    h = x.reshape(x.shape[0], -1)
    return 2.0 * h[:, 0:3]
)");
  return m;
}

// A conditional model of 4 values per sample whose input y takes 3 classes and the null
// label 3 (its eps is never called here).
std::shared_ptr<Model> labelled_model() {
  InputSpec y;
  y.name = "y";
  y.classes = 3;
  y.has_null_label = true;
  y.null_label = 3;
  return make_model(4, {y}, [](const ConstStateRef&, double, const ModelRows&, StateRef eps) { eps.setZero(); });
}

// A metric prepared for a problem whose samples carry the labels `labels` as input "y".
struct LabelledMetric {
  std::shared_ptr<Model> model = labelled_model();
  std::shared_ptr<Conditioning> cond = std::make_shared<Conditioning>();
  std::unique_ptr<SweepMetric> metric;

  LabelledMetric(const json& params, const std::vector<std::int64_t>& labels, const TempDir& dir) {
    cond->add(ModelInput::ints("y", {}, labels));
    metric = metric_registry().create(params, "sweep.metrics[0]", BuildContext{nullptr, dir.path.string()});
    MetricSetup setup;
    setup.model = model;
    setup.cond = cond;
    setup.batch = static_cast<long>(labels.size());
    setup.path = "sweep.metrics[0]";
    setup.base_dir = dir.path.string();
    metric->prepare(setup);
  }
  json values(const State& samples) const {
    ModelRows rows;
    rows.inputs = cond.get();
    json out = json::object();
    metric->compute(MetricInput{*model, samples, nullptr, &rows}, out);
    return out;
  }
};

}  // namespace

TEST_CASE("accuracy is the exact fraction of labelled samples whose logits' argmax is their label", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_logits(), dir.file("c.pt"), json{{"shape", {1, 2, 2}}});
  State x(7, 4);
  x << 0.5, -0.5, 0.25, 9,  // predicted 0
      0, 0.75, 0.5, 0,      // 1
      -1, -0.5, -0.25, 0,   // 2
      0.5, 0.5, 0, 0,       // 0 (the first of equal logits)
      0, 0, 1, 0,           // 2
      1, 0, 0, 0,           // 0
      2, 3, 0, 0;           // 1; clipped to (1, 1, 0): 0
  // Right, wrong, right, right, the null label, no label, right unclipped only.
  const std::vector<std::int64_t> labels = {0, 2, 2, 0, 3, -1, 1};
  const json spec = {{"name", "accuracy"}, {"classifier", "c.pt"}};
  json values = LabelledMetric(spec, labels, dir).values(x);
  CHECK(values.at("accuracy").get<double>() == 3.0 / 5.0);
  CHECK(values.at("accuracy_n").get<long>() == 5);
  json unclipped = spec;
  unclipped["clip"] = false;
  unclipped["max_batch"] = 2;
  values = LabelledMetric(unclipped, labels, dir).values(x);
  CHECK(values.at("accuracy").get<double>() == 4.0 / 5.0);
  CHECK(values.at("accuracy_n").get<long>() == 5);

  // Errors name the path: a label the classifier does not have, a file without forward
  // logits of the right shape, a missing file.
  try {
    LabelledMetric(spec, {0, 1, 5}, dir);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "sweep.metrics[0].input");
    CHECK_THAT(e.what(), Catch::Contains("label 5") && Catch::Contains("3 classes"));
  }
  save_torchscript(linear_logits(), dir.file("wide.pt"), json{{"shape", {5}}});
  try {
    LabelledMetric({{"name", "accuracy"}, {"classifier", "wide.pt"}}, labels, dir);
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK(e.path() == "sweep.metrics[0].classifier");
    CHECK_THAT(e.what(), Catch::Contains("5 values per sample"));
  }
  CHECK_THROWS_WITH(LabelledMetric({{"name", "accuracy"}, {"classifier", "missing.pt"}}, labels, dir),
                    Catch::Contains("missing.pt"));
}

TEST_CASE("feature_frechet per class: each class of the samples against the data rows of its class", "[torch]") {
  enable_torch_models();
  TempDir dir;
  save_torchscript(linear_features(), dir.file("f.pt"), json{{"shape", {1, 2, 2}}});
  // Data rows of classes i % 3, with their labels.
  const State data = grid_rows(300, 5);
  State data_labels(300, 1);
  for (long i = 0; i < 300; ++i) data_labels(i, 0) = static_cast<double>(i % 3);
  write_npy(dir.file("data.npy"), data);
  write_npy(dir.file("labels.npy"), data_labels);

  // Samples: the data rows of class 0 shifted by c0, those of class 1 shifted by c1 (in
  // another order), one row of class 2 (too few: left out) and one with the null label.
  const Eigen::Array4d c0(0.25, -0.5, 3, 0), c1(-0.125, 0.75, 0, -2);
  std::vector<std::int64_t> labels;
  State x(202, 4);
  long n = 0;
  for (long i = 0; i < 300; i += 3, ++n) {
    x.row(n) = data.row(i) + c0.transpose();
    labels.push_back(0);
  }
  for (long i = 298; i >= 1; i -= 3, ++n) {
    x.row(n) = data.row(i) + c1.transpose();
    labels.push_back(1);
  }
  x.row(n++) = data.row(2);
  labels.push_back(2);
  x.row(n++) = data.row(5);
  labels.push_back(3);
  REQUIRE(n == 202);

  const json spec = {{"name", "feature_frechet"},
                     {"classifier", "f.pt"},
                     {"data", {{"name", "npy"}, {"path", "data.npy"}, {"labels", "labels.npy"}}},
                     {"clip", false},
                     {"per_class", true}};
  const json values = LabelledMetric(spec, labels, dir).values(x);
  const double fd0 = 4.0 * (0.25 * 0.25 + 0.5 * 0.5), fd1 = 4.0 * (0.125 * 0.125 + 0.75 * 0.75);
  const json& classes = values.at("feature_frechet_classes");
  REQUIRE(classes.size() == 2);
  CHECK(classes.at("0").get<double>() == Approx(fd0).epsilon(1e-10));
  CHECK(classes.at("1").get<double>() == Approx(fd1).epsilon(1e-10));
  CHECK(values.at("feature_frechet").get<double>() == Approx(0.5 * (fd0 + fd1)).epsilon(1e-10));

  // A class of the samples with fewer than 2 rows in the data compared against (the first
  // 2 rows: one of class 0, one of class 1).
  json few = spec;
  few["data_samples"] = 2;
  CHECK_THROWS_WITH(LabelledMetric(few, labels, dir),
                    Catch::Contains("sweep.metrics[0].data") && Catch::Contains("class 0 has 100 samples"));
}
