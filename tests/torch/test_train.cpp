// Training: resuming reproduces an uninterrupted run exactly, a trained network
// approaches the exact eps of Gaussian data, and bad configs name their JSON path.
#include <torch/script.h>
// torch before Catch2: glog's CHECK would replace Catch2's.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/npy.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/scores/analytic.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/scores/train.hpp"
#include "support/exact.hpp"
#include "support/temp_dir.hpp"

using namespace diffsde;
using nlohmann::json;

namespace {

using diffsde::test::TempDir;

json small_config() {
  return {{"data", {{"name", "gaussian"}, {"mean", {1.0, -1.0}}, {"std", {0.5, 2.0}}}},
          {"network", {{"name", "mlp"}, {"hidden", 32}, {"layers", 1}, {"embedding", 16}}},
          {"steps", 16}, {"batch", 32}, {"lr", 1e-3}, {"seed", 3}, {"log_every", 4}, {"threads", 1}};
}

std::vector<torch::Tensor> weights(const std::string& path) {
  auto m = load_torchscript(path, torch::kCPU, nullptr);
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(json::parse(l).at("loss").dump());
  return out;
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

}  // namespace

TEST_CASE("a resumed run equals an uninterrupted one bit for bit", "[torch][train]") {
  TempDir dir;
  json config = small_config();
  train(config, "", dir.file("full.pt"));

  json first = config;
  first["steps"] = 8;
  train(first, "", dir.file("half.pt"));
  json second = config;
  second["resume"] = dir.file("half.pt");
  const TrainResult r = train(second, "", dir.file("resumed.pt"));
  CHECK(r.first_step == 8);
  CHECK(r.steps == 16);

  const auto a = weights(dir.file("full.pt")), b = weights(dir.file("resumed.pt"));
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("parameter " << i << ", max difference " << (a[i] - b[i]).abs().max().item<double>());
    CHECK(torch::equal(a[i], b[i]));
  }
  CHECK(lines(dir.file("full.loss.jsonl")) == lines(dir.file("resumed.loss.jsonl")));
  CHECK(lines(dir.file("full.loss.jsonl")).size() == 4);
}

TEST_CASE("the checkpoint carries the metadata sampling needs", "[torch][train]") {
  TempDir dir;
  train(small_config(), "", dir.file("m.pt"));
  json meta;
  load_torchscript(dir.file("m.pt"), torch::kCPU, &meta);
  CHECK(meta["format"] == "diffsde-network");
  CHECK(meta["shape"] == json::array({2}));
  CHECK(meta["prediction"] == "eps");
  CHECK(meta["time_input"] == "continuous");
  CHECK(meta["step"] == 16);
  CHECK(std::filesystem::exists(dir.file("m.pt.state")));
}

TEST_CASE("a trained MLP approaches the exact eps of Gaussian data", "[torch][train]") {
  TempDir dir;
  json config = small_config();
  config["network"] = {{"name", "mlp"}, {"hidden", 64}, {"layers", 2}, {"embedding", 32}};
  config["steps"] = 400;
  config["batch"] = 256;
  config["lr"] = 3e-3;
  config["ema"] = 0.99;
  config["log_every"] = 100;
  train(config, "", dir.file("g.pt"));

  enable_torch_models();
  BuildContext ctx;
  auto schedule = std::make_shared<VpLinearSchedule>();
  ctx.schedule = schedule;
  const auto net = model_registry().create({{"name", "torchscript"}, {"path", dir.file("g.pt")}}, "model", ctx);
  const GaussianModel exact(schedule, Eigen::Vector2d(1.0, -1.0), Eigen::Vector2d(0.5, 2.0));
  for (double t : {0.1, 0.4, 0.8}) {
    // x ~ p_t: alpha x0 + sigma z.
    const auto s = schedule->at(t);
    State x0 = test::standard_normal_rows(2000, 2, 11);
    x0.col(0) = 1.0 + 0.5 * x0.col(0);
    x0.col(1) = -1.0 + 2.0 * x0.col(1);
    const State x = s.alpha * x0 + s.sigma * test::standard_normal_rows(2000, 2, 12);
    State a(2000, 2), b(2000, 2);
    net->eps(x, t, a);
    exact.eps(x, t, b);
    const double rel = std::sqrt((a - b).square().mean() / b.square().mean());
    INFO("t = " << t << ", relative RMS error " << rel);
    CHECK(rel < 0.15);
  }
}

TEST_CASE("bad training configs name their JSON path", "[torch][train]") {
  json c = small_config();
  c["steps"] = 0;
  CHECK(error_path(c) == "steps");
  c = small_config();
  c["stepz"] = 3;
  CHECK(error_path(c) == "stepz");
  c = small_config();
  c["network"] = {{"name", "transformer"}};
  CHECK(error_path(c) == "network.name");
  c = small_config();
  c["network"]["hidden"] = -1;
  CHECK(error_path(c) == "network.hidden");
  c = small_config();
  c["data"] = {{"name", "mnist_digits"}};
  CHECK(error_path(c) == "data.name");
  c = small_config();
  c["time"] = "discrete";
  CHECK(error_path(c) == "time");
  c = small_config();
  c["task"] = "classifier";
  CHECK(error_path(c) == "data");
  // Training is written for the VP schedules; the others are refused at `schedule`.
  for (const char* name : {"ve", "subvp", "edm", "flow"}) {
    INFO(name);
    c = small_config();
    c["schedule"] = {{"name", name}};
    CHECK(error_path(c) == "schedule");
  }

  TempDir dir;
  c = small_config();
  c["resume"] = dir.file("nothing.pt");
  CHECK_THROWS_WITH(train(c, "", dir.file("m.pt")), Catch::Contains("nothing.pt"));
  c = small_config();
  c["data"] = {{"name", "fashion_mnist"}, {"dir", dir.file("no_such_dir")}};
  CHECK_THROWS_WITH(train(c, "", dir.file("m.pt")), Catch::Contains("no_such_dir") && Catch::Contains("not found"));
}

TEST_CASE("the classifier learns a labelled dataset", "[torch][train]") {
  // Two classes of 1 x 4 x 4 images: bright top half vs bright bottom half, plus noise.
  TempDir dir;
  NpyArray images, labels;
  images.shape = {200, 1, 4, 4};
  labels.shape = {200};
  const State z = test::standard_normal_rows(200, 16, 5);
  for (int i = 0; i < 200; ++i) {
    const int y = i % 2;
    labels.data.push_back(y);
    for (int p = 0; p < 16; ++p) images.data.push_back(((p < 8) == (y == 0) ? 0.8 : -0.8) + 0.3 * z(i, p));
  }
  write_npy(dir.file("x.npy"), images);
  write_npy(dir.file("y.npy"), labels);
  const json data = {{"name", "npy"}, {"path", dir.file("x.npy")}, {"labels", dir.file("y.npy")}};
  const json config = {{"task", "classifier"}, {"data", data}, {"eval_data", data},
                       {"network", {{"name", "classifier"}, {"channels", 8}, {"features", 16}}},
                       {"steps", 60}, {"batch", 32}, {"lr", 3e-3}, {"ema", 0.0}, {"threads", 1}};
  const TrainResult r = train(config, "", dir.file("clf.pt"));
  CHECK(r.test_accuracy > 0.95);
  auto m = load_torchscript(dir.file("clf.pt"), torch::kCPU, nullptr);
  const auto f = m.get_method("features")({torch::zeros({3, 1, 4, 4})}).toTensor();
  CHECK(f.sizes() == torch::IntArrayRef({3, 16}));
}
