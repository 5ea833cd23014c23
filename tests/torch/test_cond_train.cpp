// Class-conditional training for classifier-free guidance: the networks' label input, the
// labels training feeds them (p_uncond), a trained network against the exact conditional
// eps of a labelled mixture, its metadata, resume, and the config errors.
#include <torch/script.h>
// torch before Catch2: glog's CHECK would replace Catch2's.
#include <catch2/catch.hpp>

#include <numeric>

#include "diffsde/error.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/networks.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/scores/train.hpp"
#include "support/exact.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

using diffsde::test::TempDir;

// Two well separated components; the data labels them 0 and 1 (by component).
const json kMixture = {{"name", "gmm"},
                       {"weights", {1.0, 1.0}},
                       {"means", {{-1.5, 0.5}, {1.5, -0.5}}},
                       {"stds", {{0.5, 0.4}}}};

json cond_config() {
  return {{"data", kMixture},
          {"network", {{"name", "mlp"}, {"hidden", 32}, {"layers", 1}, {"embedding", 16}, {"classes", 2}}},
          {"steps", 16}, {"batch", 32}, {"lr", 1e-3}, {"seed", 3}, {"log_every", 4}, {"threads", 1}};
}

std::string error_path(const json& config) {
  try {
    TempDir dir;
    train(config, "", dir.file("m.pt"));
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "(no error)";
}

// eps of the network at (x, t) for every row with label y.
State net_eps(torch::jit::Module& m, const State& x, double t, std::int64_t y) {
  torch::NoGradGuard no_grad;
  const auto xt = torch::from_blob(const_cast<double*>(x.data()), {x.rows(), x.cols()}, torch::kFloat64)
                      .to(torch::kFloat32);
  const auto out = m.forward({xt, torch::full({x.rows()}, t, torch::kFloat32),
                              torch::full({x.rows()}, y, torch::kInt64)})
                       .toTensor()
                       .to(torch::kFloat64)
                       .contiguous();
  return Eigen::Map<const State>(out.data_ptr<double>(), x.rows(), x.cols());
}

double relative_rms(const State& a, const State& b) { return std::sqrt((a - b).square().mean() / b.square().mean()); }

}  // namespace

TEST_CASE("training labels: all real at p_uncond 0, all null at 1, keyed by (seed, step, sample)",
          "[torch][train][cond]") {
  std::vector<int> labels(5000);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 10);
  const std::vector<std::int64_t> real(labels.begin(), labels.end());
  CHECK(training_labels(labels, 0, 0, 10, 0.0) == real);
  CHECK(training_labels(labels, 4, 17, 10, 0.0) == real);
  CHECK(training_labels(labels, 4, 17, 10, 1.0) == std::vector<std::int64_t>(labels.size(), 10));

  const auto a = training_labels(labels, 4, 17, 10, 0.25);
  CHECK(a == training_labels(labels, 4, 17, 10, 0.25));  // a function of its key
  CHECK(a != training_labels(labels, 4, 18, 10, 0.25));  // another step drops others
  CHECK(a != training_labels(labels, 5, 17, 10, 0.25));  // another seed too
  long dropped = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == 10) ++dropped;
    else CHECK(a[i] == labels[i]);
  }
  // Binomial(5000, 0.25): mean 1250, sd 31.
  CHECK(std::abs(dropped - 1250) < 150);
  // A larger p_uncond drops a superset (the same uniforms, a higher threshold).
  const auto b = training_labels(labels, 4, 17, 10, 0.5);
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] == 10) CHECK(b[i] == 10);
}

TEST_CASE("conditional networks take y with a null label; classes 0 is the unconditional network",
          "[torch][train][cond]") {
  const json mlp = {{"name", "mlp"}, {"hidden", 16}, {"layers", 1}, {"embedding", 8}};
  json cond = mlp;
  cond["classes"] = 3;
  json zero = mlp;
  zero["classes"] = 0;
  auto plain = make_network(mlp, "network", {2}, 1000.0, 5);
  auto same = make_network(zero, "network", {2}, 1000.0, 5);
  auto conditional = make_network(cond, "network", {2}, 1000.0, 5);
  CHECK(network_classes(mlp, "network") == 0);
  CHECK(network_classes(cond, "network") == 3);

  // classes 0: the same parameters, initialised alike.
  const auto p = plain.parameters(), q = same.parameters();
  REQUIRE(p.size() == q.size());
  for (auto i = p.begin(), j = q.begin(); i != p.end(); ++i, ++j) CHECK(torch::equal(*i, *j));
  // classes 3: one more table, 4 rows as wide as the time embedding.
  CHECK(parameter_count(conditional) == parameter_count(plain) + 4 * 8);

  torch::NoGradGuard no_grad;
  const auto x = torch::randn({4, 2}), t = torch::full({4}, 0.5);
  const auto eps = conditional.forward({x, t, torch::tensor({0, 1, 2, 3}, torch::kInt64)}).toTensor();
  CHECK(eps.sizes() == torch::IntArrayRef({4, 2}));
  CHECK_THROWS(conditional.forward({x, t}));  // y is required

  const json unet = {{"name", "unet"}, {"channels", 8}, {"multipliers", {1}}, {"attention_resolution", 0},
                     {"classes", 10}};
  auto u = make_network(unet, "network", {1, 4, 4}, 1000.0, 1);
  const auto labels = torch::tensor({0, 9, 10}, torch::kInt64);
  const auto img = u.forward({torch::randn({3, 1, 4, 4}), torch::full({3}, 0.3), labels}).toTensor();
  CHECK(img.sizes() == torch::IntArrayRef({3, 1, 4, 4}));
}

TEST_CASE("a conditional MLP learns each class's exact eps and, with the null label, the mixture's",
          "[torch][train][cond]") {
  TempDir dir;
  json config = cond_config();
  config["network"] = {{"name", "mlp"}, {"hidden", 64}, {"layers", 2}, {"embedding", 32}, {"classes", 2}};
  config["steps"] = 1500;
  config["batch"] = 256;
  config["lr"] = 3e-3;
  config["ema"] = 0.99;
  config["log_every"] = 100;
  config["p_uncond"] = 0.3;
  train(config, "", dir.file("c.pt"));

  json meta;
  auto m = load_torchscript(dir.file("c.pt"), torch::kCPU, &meta);
  CHECK(meta["inputs"] == json::parse(R"([{"name": "y", "type": "int64", "shape": [], "classes": 2, "null": 2}])"));
  CHECK(meta["network"]["classes"] == 2);
  CHECK(meta["p_uncond"] == 0.3);

  auto schedule = std::make_shared<VpLinearSchedule>();
  const Eigen::MatrixXd means = (Eigen::MatrixXd(2, 2) << -1.5, 0.5, 1.5, -0.5).finished();
  const Eigen::Vector2d std_dev(0.5, 0.4);
  const GmmModel mixture(schedule, Eigen::Vector2d(1.0, 1.0), means, std_dev.transpose().replicate(2, 1));
  for (double t : {0.1, 0.4, 0.8}) {
    const auto s = schedule->at(t);
    for (int c = 0; c < 2; ++c) {
      // x ~ p_t(x | c): alpha x0 + sigma z with x0 from component c.
      const Eigen::Vector2d mean = means.row(c).transpose();
      const GaussianModel exact(schedule, mean, std_dev);
      State x0 = test::standard_normal_rows(2000, 2, 11 + static_cast<std::uint64_t>(c));
      for (int j = 0; j < 2; ++j) x0.col(j) = mean(j) + std_dev(j) * x0.col(j);
      const State x = s.alpha * x0 + s.sigma * test::standard_normal_rows(2000, 2, 21);
      State want(2000, 2);
      exact.eps(x, t, want);
      const double rel = relative_rms(net_eps(m, x, t, c), want);
      INFO("t = " << t << ", class " << c << ", relative RMS error " << rel);
      CHECK(rel < 0.1);
      // The other label gives another answer: the network reads y.
      CHECK(relative_rms(net_eps(m, x, t, 1 - c), want) > 2 * rel);
      // The null label: the whole mixture's eps.
      State whole(2000, 2);
      mixture.eps(x, t, whole);
      const double rel_null = relative_rms(net_eps(m, x, t, 2), whole);
      INFO("null label: relative RMS error " << rel_null);
      CHECK(rel_null < 0.25);
    }
  }
}

TEST_CASE("a resumed conditional run equals an uninterrupted one bit for bit", "[torch][train][cond]") {
  TempDir dir;
  json config = cond_config();
  config["p_uncond"] = 0.5;
  train(config, "", dir.file("full.pt"));
  json first = config;
  first["steps"] = 8;
  train(first, "", dir.file("half.pt"));
  json second = config;
  second["resume"] = dir.file("half.pt");
  train(second, "", dir.file("resumed.pt"));
  auto a = load_torchscript(dir.file("full.pt"), torch::kCPU, nullptr);
  auto b = load_torchscript(dir.file("resumed.pt"), torch::kCPU, nullptr);
  const auto p = a.parameters(), q = b.parameters();
  for (auto i = p.begin(), j = q.begin(); i != p.end(); ++i, ++j) CHECK(torch::equal(*i, *j));
}

TEST_CASE("unconditional checkpoints declare no inputs", "[torch][train][cond]") {
  TempDir dir;
  json config = cond_config();
  config["network"].erase("classes");
  train(config, "", dir.file("u.pt"));
  json meta;
  load_torchscript(dir.file("u.pt"), torch::kCPU, &meta);
  CHECK_FALSE(meta.contains("inputs"));
  CHECK_FALSE(meta.contains("p_uncond"));
}

TEST_CASE("bad conditional training configs name their JSON path", "[torch][train][cond]") {
  json c = cond_config();
  c["p_uncond"] = -0.1;
  CHECK(error_path(c) == "p_uncond");
  c["p_uncond"] = 1.5;
  CHECK(error_path(c) == "p_uncond");
  c = cond_config();
  c["network"]["classes"] = -1;
  CHECK(error_path(c) == "network.classes");

  // Unlabelled data.
  c = cond_config();
  c["data"] = {{"name", "swiss_roll"}};
  CHECK(error_path(c) == "network.classes");
  CHECK_THROWS_WITH(train(c, "", TempDir().file("m.pt")), Catch::Contains("swiss_roll") && Catch::Contains("no labels"));
  c["network"] = {{"name", "unet"}, {"classes", 10}};
  c["data"] = {{"name", "gaussian"}, {"mean", {0.0}}, {"std", {1.0}}};
  CHECK(error_path(c) == "network.classes");

  // Labels beyond the classes: a toy, and a file.
  c = cond_config();
  c["data"] = {{"name", "8gaussians"}};
  CHECK(error_path(c) == "network.classes");
  CHECK_THROWS_WITH(train(c, "", TempDir().file("m.pt")),
                    Catch::Contains("0 .. 7") && Catch::Contains("classes = 2"));
  TempDir dir;
  NpyArray x, y;
  x.shape = {6, 2};
  x.data.assign(12, 0.5);
  y.shape = {6};
  y.data = {0, 1, 0, 1, 2, 0};
  write_npy(dir.file("x.npy"), x);
  write_npy(dir.file("y.npy"), y);
  c["data"] = {{"name", "npy"}, {"path", dir.file("x.npy")}, {"labels", dir.file("y.npy")}};
  CHECK(error_path(c) == "network.classes");
  c["network"]["classes"] = 3;
  CHECK(error_path(c) == "(no error)");
}
