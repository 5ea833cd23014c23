// TorchScriptModel: the one adapter between the Eigen state and a LibTorch network.
#include <torch/script.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
// torch first: its logging macros clash with others defined later.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>

#include "diffsde/error.hpp"
#include "diffsde/io.hpp"
#include "diffsde/metrics.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"

namespace diffsde {

struct TorchScriptModel::Impl {
  std::shared_ptr<const Schedule> schedule;
  TorchModelOptions options;
  nlohmann::json metadata;
  mutable torch::jit::Module module;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;
  Prediction prediction = Prediction::eps;
  bool discrete = false;
  int dim = 0;
  mutable std::atomic<long long> forward_ns{0};
  mutable std::atomic<long> forward_calls{0};

  // The network's output for rows [r0, r0 + n) of x, as a (n, dim) double CPU tensor.
  torch::Tensor forward(const ConstStateRef& x, Eigen::Index r0, Eigen::Index n, double t_net,
                        bool grad, torch::Tensor* x_in = nullptr) const;
  [[noreturn]] void fail(const std::string& message) const { throw Error(options.path + ": " + message); }
};

namespace {

std::string shape_string(c10::IntArrayRef sizes) {
  std::ostringstream os;
  os << "[";
  for (std::size_t k = 0; k < sizes.size(); ++k) os << (k ? ", " : "") << sizes[k];
  os << "]";
  return os.str();
}

// Rows [r0, r0 + n) of x as a float64 CPU tensor of sizes (n, *shape), viewing x's memory
// (rows of a row-major state are contiguous; a strided view is copied first).
torch::Tensor rows_tensor(const ConstStateRef& x, Eigen::Index r0, Eigen::Index n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> sizes{static_cast<int64_t>(n)};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  if (x.outerStride() == x.cols())
    return torch::from_blob(const_cast<double*>(x.data() + r0 * x.cols()), sizes, torch::kFloat64);
  torch::Tensor xt = torch::empty(sizes, torch::kFloat64);
  auto* dst = xt.data_ptr<double>();
  for (Eigen::Index r = 0; r < n; ++r)
    std::memcpy(dst + r * x.cols(), x.data() + (r0 + r) * x.outerStride(), sizeof(double) * static_cast<std::size_t>(x.cols()));
  return xt;
}

}  // namespace

torch::Tensor TorchScriptModel::Impl::forward(const ConstStateRef& x, Eigen::Index r0, Eigen::Index n,
                                              double t_net, bool grad, torch::Tensor* x_in) const {
  torch::Tensor xt = rows_tensor(x, r0, n, std::vector<int64_t>(options.shape.begin(), options.shape.end()))
                         .to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  if (grad) xt.requires_grad_(true);
  if (x_in) *x_in = xt;
  torch::Tensor tt = torch::full({static_cast<int64_t>(n)}, t_net, torch::TensorOptions().dtype(dtype).device(device));
  const auto start = std::chrono::steady_clock::now();
  c10::IValue out;
  try {
    out = module.forward({xt, tt});
  } catch (const c10::Error& e) {
    fail("forward failed: " + torch_error_message(e));
  }
  forward_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  ++forward_calls;
  if (!out.isTensor()) fail("forward returned " + out.tagKind() + ", expected a Tensor of x's shape");
  torch::Tensor y = out.toTensor();
  if (!at::isFloatingType(y.scalar_type()))
    fail(std::string("forward returned dtype ") + c10::toString(y.scalar_type()) +
         ", expected a floating-point tensor");
  if (y.sizes() != xt.sizes())
    fail("forward returned shape " + shape_string(y.sizes()) + ", expected " + shape_string(xt.sizes()) +
         " (the shape of x)");
  return y;
}

TorchScriptModel::TorchScriptModel(std::shared_ptr<const Schedule> schedule, TorchModelOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.schedule = std::move(schedule);
  m.device = parse_torch_device(options.device);
  if (options.dtype != "float32" && options.dtype != "float64")
    throw Error("dtype must be float32 or float64, got " + options.dtype);
  m.dtype = options.dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
  if (options.threads > 0) at::set_num_threads(options.threads);

  m.module = load_torchscript(options.path, m.device, &m.metadata);
  m.module.eval();
  m.module.to(m.dtype);
  const auto& meta = m.metadata;
  auto meta_string = [&](const char* key) {
    return meta.is_object() && meta.contains(key) && meta[key].is_string() ? meta[key].get<std::string>()
                                                                           : std::string();
  };
  if (options.shape.empty() && meta.is_object() && meta.contains("shape"))
    options.shape = meta["shape"].get<std::vector<int>>();
  if (options.shape.empty())
    throw Error(options.path + ": no per-sample shape: give the model's `shape` (e.g. [1, 28, 28]); "
                "the file has no diffsde.json metadata with one");
  if (options.time_input.empty()) options.time_input = meta_string("time_input");
  if (options.time_input.empty()) options.time_input = "continuous";
  if (options.prediction.empty()) options.prediction = meta_string("prediction");
  if (options.prediction.empty()) options.prediction = "eps";
  m.prediction = prediction_from_string(options.prediction);
  if (m.prediction == Prediction::score) throw Error("prediction must be eps, x0 or v");
  m.discrete = options.time_input == "discrete";
  if (m.discrete && options.discrete_steps <= 0) {
    if (const auto* d = dynamic_cast<const VpDiscreteSchedule*>(m.schedule.get()))
      options.discrete_steps = d->num_steps();
    else if (meta.is_object() && meta.contains("discrete_steps"))
      options.discrete_steps = meta["discrete_steps"].get<int>();
    else
      throw Error(options.path + ": discrete time input needs N: give `discrete_steps` or use a "
                  "vp_discrete schedule");
  }
  m.dim = 1;
  for (int s : options.shape) {
    if (s <= 0) throw Error(options.path + ": shape entries must be > 0");
    m.dim *= s;
  }
  m.options = std::move(options);
}

TorchScriptModel::~TorchScriptModel() = default;

int TorchScriptModel::dim() const { return impl_->dim; }
std::vector<int> TorchScriptModel::shape() const { return impl_->options.shape; }
const TorchModelOptions& TorchScriptModel::options() const { return impl_->options; }
const nlohmann::json& TorchScriptModel::metadata() const { return impl_->metadata; }
double TorchScriptModel::forward_seconds() const { return static_cast<double>(impl_->forward_ns.load()) * 1e-9; }
long TorchScriptModel::forward_calls() const { return impl_->forward_calls.load(); }

double TorchScriptModel::network_time(double t) const {
  return impl_->discrete ? t * impl_->options.discrete_steps - 1.0 : t;
}

void TorchScriptModel::eps(const ConstStateRef& x, double t, StateRef out) const {
  const Impl& m = *impl_;
  if (x.cols() != m.dim)
    throw Error(m.options.path + ": x has " + std::to_string(x.cols()) + " columns, the model's shape needs " +
                std::to_string(m.dim));
  torch::NoGradGuard no_grad;
  const Eigen::Index rows = x.rows();
  const Eigen::Index chunk = m.options.max_batch > 0 ? m.options.max_batch : std::max<Eigen::Index>(rows, 1);
  const double t_net = network_time(t);
  for (Eigen::Index r0 = 0; r0 < rows; r0 += chunk) {
    const Eigen::Index n = std::min(chunk, rows - r0);
    const torch::Tensor y = m.forward(x, r0, n, t_net, false).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* src = y.data_ptr<double>();
    for (Eigen::Index r = 0; r < n; ++r)
      std::memcpy(&out(r0 + r, 0), src + r * m.dim, sizeof(double) * static_cast<std::size_t>(m.dim));
  }
  if (m.prediction != Prediction::eps) {
    const ScheduleAt s = m.schedule->at(t);
    to_eps(m.prediction, x, out, s.alpha, s.sigma, out);
  }
}

bool TorchScriptModel::has_jvp() const { return true; }

void TorchScriptModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
                               StateRef jvp_out) const {
  // J v by two reverse passes: g(u) = J^T u is linear in u, so d<g(u), v>/du = J v.
  const Impl& m = *impl_;
  torch::AutoGradMode grad_mode(true);
  const Eigen::Index rows = x.rows();
  const Eigen::Index chunk = m.options.max_batch > 0 ? m.options.max_batch : std::max<Eigen::Index>(rows, 1);
  const ScheduleAt s = m.schedule->at(t);
  for (Eigen::Index r0 = 0; r0 < rows; r0 += chunk) {
    const Eigen::Index n = std::min(chunk, rows - r0);
    torch::Tensor xt;
    torch::Tensor y = m.forward(x, r0, n, network_time(t), true, &xt);
    // eps as a function of the network output, in the network's dtype.
    torch::Tensor e = y;
    if (m.prediction == Prediction::x0) e = (xt - s.alpha * y) / s.sigma;
    if (m.prediction == Prediction::v) e = s.sigma * xt + s.alpha * y;
    torch::Tensor vt = torch::from_blob(const_cast<double*>(v.data()), {v.rows(), v.cols()}, torch::kFloat64);
    if (v.outerStride() != v.cols()) throw Error("eps_jvp: v must have contiguous rows");
    vt = vt.narrow(0, r0, n).reshape(xt.sizes()).to(m.device, m.dtype);
    torch::Tensor u = torch::zeros_like(e, torch::TensorOptions().requires_grad(true));
    torch::Tensor g = torch::autograd::grad({e}, {xt}, {u}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    torch::Tensor jv = torch::autograd::grad({g}, {u}, {vt}, /*retain_graph=*/false, /*create_graph=*/false)[0];
    const torch::Tensor ec = e.detach().to(torch::kCPU, torch::kFloat64).contiguous().reshape({n, m.dim});
    const torch::Tensor jc = jv.to(torch::kCPU, torch::kFloat64).contiguous().reshape({n, m.dim});
    for (Eigen::Index r = 0; r < n; ++r) {
      std::memcpy(&eps_out(r0 + r, 0), ec.data_ptr<double>() + r * m.dim, sizeof(double) * static_cast<std::size_t>(m.dim));
      std::memcpy(&jvp_out(r0 + r, 0), jc.data_ptr<double>() + r * m.dim, sizeof(double) * static_cast<std::size_t>(m.dim));
    }
  }
}

namespace {

std::unique_ptr<Model> make_torchscript_model(const Params& p, const BuildContext& ctx) {
  if (!ctx.schedule) throw ConfigError(p.path(), "the torchscript model needs a schedule");
  TorchModelOptions o;
  if (!p.has("path")) p.fail("path", "is required (the TorchScript .pt file)");
  o.path = resolve_path(ctx.base_dir, p.string("path"));
  if (p.has("shape")) {
    for (double s : p.numbers("shape")) {
      if (!(s >= 1) || s != static_cast<double>(static_cast<int>(s))) p.fail("shape", "entries must be integers >= 1");
      o.shape.push_back(static_cast<int>(s));
    }
    if (o.shape.empty()) p.fail("shape", "must have at least one entry");
  }
  o.device = p.string("device");
  try {
    parse_torch_device(o.device);
  } catch (const Error& e) {
    p.fail("device", e.what());
  }
  o.dtype = p.string("dtype");
  if (p.has("time_input")) o.time_input = p.string("time_input");
  if (p.has("discrete_steps")) {
    if (p.integer("discrete_steps") < 1) p.fail("discrete_steps", "must be >= 1");
    o.discrete_steps = static_cast<int>(p.integer("discrete_steps"));
  }
  if (p.has("prediction")) o.prediction = p.string("prediction");
  if (p.integer("max_batch") < 0) p.fail("max_batch", "must be >= 0 (0: whole batch)");
  o.max_batch = static_cast<int>(p.integer("max_batch"));
  if (p.integer("threads") < 0) p.fail("threads", "must be >= 0");
  o.threads = static_cast<int>(p.integer("threads"));
  try {
    return std::make_unique<TorchScriptModel>(ctx.schedule, std::move(o));
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(p.path(), e.what());
  }
}

// The classifier behind a FeatureMap: its module, input shape and a lock (one call at a time).
struct FeatureNetwork {
  std::string path;
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
  std::vector<int64_t> shape;
  int64_t dim = 1;
  long max_batch = 500;
  std::mutex mutex;

  State operator()(const ConstStateRef& x) {
    if (x.cols() != dim)
      throw Error(path + ": the classifier takes " + std::to_string(dim) + " values per sample (shape " +
                  shape_string(shape) + "), the samples have " + std::to_string(x.cols()));
    std::lock_guard<std::mutex> lock(mutex);
    torch::NoGradGuard no_grad;
    State out;
    for (Eigen::Index r0 = 0; r0 < x.rows(); r0 += max_batch) {
      const Eigen::Index n = std::min<Eigen::Index>(max_batch, x.rows() - r0);
      const torch::Tensor xt = rows_tensor(x, r0, n, shape).to(device, torch::kFloat32, false, /*copy=*/true);
      c10::IValue y;
      try {
        y = module.get_method("features")({xt});
      } catch (const c10::Error& e) {
        throw Error(path + ": features failed: " + torch_error_message(e));
      }
      if (!y.isTensor() || y.toTensor().dim() != 2 || y.toTensor().size(0) != n)
        throw Error(path + ": features must return a (B, K) tensor");
      const torch::Tensor f = y.toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
      if (out.size() == 0) out.resize(x.rows(), f.size(1));
      std::memcpy(&out(r0, 0), f.data_ptr<double>(), sizeof(double) * static_cast<std::size_t>(n * f.size(1)));
    }
    return out;
  }
};

FeatureMap load_classifier_features(const FeatureMapOptions& o) {
  auto net = std::make_shared<FeatureNetwork>();
  net->path = o.path;
  net->device = parse_torch_device(o.device);
  nlohmann::json metadata;
  net->module = load_torchscript(o.path, net->device, &metadata);
  net->module.eval();
  if (!net->module.find_method("features"))
    throw IoError(o.path, "has no method 'features' (train one with {\"task\": \"classifier\"})");
  std::vector<int> shape = o.shape;
  if (shape.empty() && metadata.is_object() && metadata.contains("shape")) shape = metadata["shape"].get<std::vector<int>>();
  if (shape.empty()) throw Error(o.path + ": the classifier's input shape is neither given nor in its metadata");
  for (int d : shape) {
    net->shape.push_back(d);
    net->dim *= d;
  }
  net->max_batch = std::max(1L, o.max_batch);
  return [net](const ConstStateRef& x) { return (*net)(x); };
}

}  // namespace

bool torch_cuda_available() { return torch::cuda::is_available(); }

void enable_torch_models() {
  use_reproducible_torchscript();
  set_torchscript_factory(make_torchscript_model);
  set_feature_map_loader(load_classifier_features);
}

}  // namespace diffsde
