// Benchmark (not a test): the cost of the solver and of the Eigen <-> LibTorch boundary
// next to the network, and training throughput.
//   diffsde_bench_torch [--batch B] [--steps N] [--threads T] [--repeats R] [--train-steps S]
// For the small U-Net of configs/train/fashion_mnist.json on 1 x 28 x 28 it prints one
// evaluation's time (TorchScriptModel::eps, and the bare module forward inside it),
// full sampler runs at N steps, and the ratio run / (NFE x evaluation), which should be
// close to 1; then training samples/s.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <unistd.h>

#include "diffsde/config.hpp"
#include "diffsde/driver.hpp"
#include "diffsde/io.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/scores/networks.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"
#include "diffsde/scores/train.hpp"

using namespace diffsde;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diffsde_bench_torch: solver and boundary cost next to a U-Net, training samples/s"};
  long batch = 64, steps = 20, repeats = 5, train_steps = 20;
  int threads = 0;
  std::string recipe = std::string(DIFFSDE_SOURCE_DIR) + "/configs/train/fashion_mnist.json";
  app.add_option("--batch", batch, "samples per evaluation");
  app.add_option("--steps", steps, "sampler steps");
  app.add_option("--repeats", repeats, "repetitions (the median is printed)");
  app.add_option("--threads", threads, "LibTorch intra-op threads (0: LibTorch's default)");
  app.add_option("--train-steps", train_steps, "training steps timed (0: skip training)");
  app.add_option("--recipe", recipe, "training config whose network is benchmarked");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) at::set_num_threads(threads);
  enable_torch_models();

  const json config = read_json_file(recipe);
  const std::string dir = std::filesystem::temp_directory_path() / ("diffsde_bench_torch_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/unet.pt";
  const std::vector<int> shape{1, 28, 28};
  save_torchscript(make_network(config.at("network"), "network", shape, 1000.0, 0), path,
                   {{"shape", shape}, {"prediction", "eps"}, {"time_input", "continuous"}});

  std::cout << "network " << config.at("network").dump() << ", batch " << batch << ", LibTorch threads "
            << at::get_num_threads() << "\n";
  json sample = default_sample_config();
  sample["model"] = {{"name", "torchscript"}, {"path", path}};
  sample["batch"] = batch;
  sample["grid"] = {{"name", "logSNR"}, {"steps", steps}, {"t_end", 1e-3}};

  // One evaluation, through the adapter and bare.
  SampleJob probe = build_sample_job(parse_sample_config(sample));
  const auto& model = dynamic_cast<const TorchScriptModel&>(*probe.model);
  State out(probe.x.rows(), probe.x.cols());
  for (int k = 0; k < 2; ++k) model.eps(probe.x, 0.5, out);  // warm-up
  std::vector<double> eval, bare;
  auto module = load_torchscript(path, torch::kCPU, nullptr);
  const auto xt = torch::from_blob(probe.x.data(), {batch, 1, 28, 28}, torch::kFloat64).to(torch::kFloat32);
  const auto tt = torch::full({batch}, 0.5);
  {
    torch::NoGradGuard no_grad;
    for (int k = 0; k < 2; ++k) module.forward({xt, tt});  // warm-up
  }
  // Interleaved, so that a change in machine load affects both alike.
  for (long r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    model.eps(probe.x, 0.5, out);
    eval.push_back(seconds_since(start));
    torch::NoGradGuard no_grad;
    start = Clock::now();
    module.forward({xt, tt});
    bare.push_back(seconds_since(start));
  }
  const double e = median(eval), b = median(bare);
  std::cout << std::fixed << std::setprecision(4) << "one evaluation: " << e * 1e3 << " ms (bare forward "
            << b * 1e3 << " ms; the boundary adds " << std::setprecision(2) << 100.0 * (e - b) / b << "%)\n";

  // Two ratios: against NFE x the median evaluation above, and against the time spent
  // inside the network's forward during the run itself (robust to load changes between
  // the two measurements): the latter is exactly the solver's + the boundary's share.
  std::cout << "solver      steps  NFE   run (s)   NFE x eval (s)   ratio   in forward (s)   run / forward\n";
  for (const char* solver : {"ddim", "dpm_solver", "dpmpp_2m_sde", "heun"}) {
    sample["solver"] = {{"name", solver}};
    std::vector<double> runs, inside;
    long nfe = 0;
    for (long r = 0; r < std::max<long>(1, repeats / 2); ++r) {
      SampleJob job = build_sample_job(parse_sample_config(sample));
      const auto& net = dynamic_cast<const TorchScriptModel&>(*job.model);
      const double before = net.forward_seconds();
      const auto start = Clock::now();
      const Summary s = run_sample_job(job);
      runs.push_back(seconds_since(start));
      inside.push_back(net.forward_seconds() - before);
      nfe = s.nfe;
    }
    const double run = median(runs), in_forward = median(inside);
    std::cout << std::left << std::setw(12) << solver << std::right << std::setw(5) << steps << std::setw(5) << nfe
              << std::setw(10) << std::setprecision(3) << run << std::setw(17) << nfe * e << std::setw(8)
              << std::setprecision(3) << run / (static_cast<double>(nfe) * e) << std::setw(17) << in_forward
              << std::setw(16) << std::setprecision(4) << run / in_forward << "\n";
  }

  if (train_steps > 0) {
    json t = config;
    t["steps"] = train_steps;
    t["log_every"] = train_steps;
    t["checkpoint_every"] = 0;
    t["warmup"] = 0;
    if (threads > 0) t["threads"] = threads;
    const TrainResult r = train(t, parent_dir(recipe), dir + "/train.pt");
    std::cout << "training: " << train_steps << " steps of batch " << t.value("batch", 0) << " in "
              << std::setprecision(1) << r.seconds << " s: " << std::setprecision(1) << r.samples_per_s
              << " samples/s (" << r.parameters << " parameters)\n";
  }
  std::filesystem::remove_all(dir);
  return 0;
}
