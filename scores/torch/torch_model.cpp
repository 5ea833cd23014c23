// TorchScriptModel: the one adapter between the Eigen state and a LibTorch network (x, t
// and the declared inputs in, a prediction of x's shape out).
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
#include "diffsde/prediction_model.hpp"
#include "diffsde/schedule.hpp"
#include "diffsde/scores/torch_model.hpp"
#include "diffsde/scores/torch_util.hpp"

namespace diffsde {

struct TorchScriptModel::Impl {
  // An argument of forward after x and t, and the declared input it takes (-1: none).
  struct ExtraArgument {
    std::string name;
    int input = -1;
    bool kwarg_only = false, has_default = false, takes_none = false;
  };

  std::shared_ptr<const Schedule> schedule;
  TorchModelOptions options;
  nlohmann::json metadata;
  mutable torch::jit::Module module;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;
  Prediction prediction = Prediction::eps;
  bool discrete = false;
  int dim = 0;
  // forward's names for x and t, and its arguments after them.
  std::string x_name = "x", t_name = "t";
  std::vector<ExtraArgument> extra;
  mutable std::atomic<long long> forward_ns{0};
  mutable std::atomic<long> forward_calls{0};

  // The network's output for rows [r0, r0 + n) of x, whose inputs are rows
  // rows.input_row0 + r0 + r of `rows`' inputs, as a tensor of xt's shape in the network's
  // dtype. dry_run: the messages say it was the dry run.
  torch::Tensor forward(const ConstStateRef& x, Eigen::Index r0, Eigen::Index n, double t_net,
                        const ModelRows& rows, bool grad, torch::Tensor* x_in = nullptr,
                        bool dry_run = false) const;
  // Rows [row0, row0 + n) of an input as a tensor (n, *shape) on the device: int64, or floats
  // in the network's dtype.
  torch::Tensor input_tensor(const ModelInput& input, long row0, long n) const;
  // Checks a call's x and inputs: x's columns, every required input given with its
  // declared type and enough rows.
  void check_call(const ConstStateRef& x, const ModelRows& rows) const;
  // The network's output for every row of x at network time t_net, in chunks of
  // max_batch rows, into out (float64).
  void output(const ConstStateRef& x, double t_net, const ModelRows& rows, StateRef out) const;
  // Reads forward's schema and checks the declared inputs against it (Error naming the
  // file and the argument). `source`: where the inputs were declared, for the messages.
  void match_schema(const std::string& source);
  // One forward on one row of zeros, inputs zeros (label 0), t = 0.5.
  void dry_run() const;
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

torch::Tensor TorchScriptModel::Impl::input_tensor(const ModelInput& input, long row0, long n) const {
  std::vector<int64_t> sizes{static_cast<int64_t>(n)};
  sizes.insert(sizes.end(), input.shape().begin(), input.shape().end());
  const auto size = static_cast<std::size_t>(input.size());
  if (input.type() == InputType::int64) {
    torch::Tensor out = torch::empty(sizes, torch::kInt64);
    auto* dst = out.data_ptr<int64_t>();
    for (long r = 0; r < n; ++r)
      std::memcpy(dst + static_cast<std::size_t>(r) * size, input.int_row(row0 + r), sizeof(int64_t) * size);
    return out.to(device);
  }
  torch::Tensor out = torch::empty(sizes, torch::kFloat64);
  auto* dst = out.data_ptr<double>();
  for (long r = 0; r < n; ++r)
    std::memcpy(dst + static_cast<std::size_t>(r) * size, input.float_row(row0 + r), sizeof(double) * size);
  return out.to(device, dtype);
}

torch::Tensor TorchScriptModel::Impl::forward(const ConstStateRef& x, Eigen::Index r0, Eigen::Index n,
                                              double t_net, const ModelRows& rows, bool grad,
                                              torch::Tensor* x_in, bool dry_run) const {
  torch::Tensor xt = rows_tensor(x, r0, n, std::vector<int64_t>(options.shape.begin(), options.shape.end()))
                         .to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  if (grad) xt.requires_grad_(true);
  if (x_in) *x_in = xt;
  torch::Tensor tt = torch::full({static_cast<int64_t>(n)}, t_net, torch::TensorOptions().dtype(dtype).device(device));
  // The inputs after x and t in forward's order: positionally while none is skipped, then
  // by name (an absent optional input takes forward's default).
  std::vector<c10::IValue> args{xt, tt};
  torch::jit::Kwargs kwargs;
  std::string call = x_name + ", " + t_name;
  bool positional = true;
  for (const ExtraArgument& a : extra) {
    const ModelInput* in = a.input >= 0 ? rows.input(options.inputs[static_cast<std::size_t>(a.input)].name) : nullptr;
    c10::IValue value;
    if (in != nullptr) {
      value = input_tensor(*in, rows.input_row0 + static_cast<long>(r0), static_cast<long>(n));
    } else if (a.input < 0 || a.has_default) {
      positional = false;
      continue;
    }  // else: an absent optional input whose argument has no default takes None
    call += ", " + a.name;
    positional = positional && !a.kwarg_only;
    if (positional)
      args.push_back(std::move(value));
    else
      kwargs.emplace(a.name, std::move(value));
  }
  const std::string what = "forward(" + call + ")";
  const std::string when = dry_run ? " on a dry run with one row" : "";
  const auto start = std::chrono::steady_clock::now();
  c10::IValue out;
  try {
    out = module.get_method("forward")(std::move(args), kwargs);
  } catch (const std::exception& e) {
    fail(what + " failed" + when + ": " + torch_error_message(e));
  }
  forward_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  ++forward_calls;
  if (!out.isTensor()) fail(what + " returned " + out.tagKind() + when + ", expected a Tensor of x's shape");
  torch::Tensor y = out.toTensor();
  if (!at::isFloatingType(y.scalar_type()))
    fail(what + " returned dtype " + c10::toString(y.scalar_type()) + when + ", expected a floating-point tensor");
  if (y.sizes() != xt.sizes())
    fail(what + " returned shape " + shape_string(y.sizes()) + when + ", expected " + shape_string(xt.sizes()) +
         " (the shape of x)");
  return y;
}

void TorchScriptModel::Impl::check_call(const ConstStateRef& x, const ModelRows& rows) const {
  if (x.cols() != dim)
    fail("x has " + std::to_string(x.cols()) + " columns, the model's shape needs " + std::to_string(dim));
  for (const InputSpec& spec : options.inputs) {
    const ModelInput* in = rows.input(spec.name);
    if (in == nullptr) {
      if (spec.optional) continue;
      fail("the model takes input '" + spec.name + "' (" + to_string(spec.type) +
           (spec.classes > 0 ? ", " + std::to_string(spec.classes) + " classes" : std::string()) +
           ") and none was given (in a sample config: \"cond\": {\"" + spec.name + "\": ...})");
    }
    if (in->type() != spec.type)
      fail("input '" + spec.name + "' is " + to_string(in->type()) + ", the model takes " + to_string(spec.type));
    if (in->rows() != 1 && in->rows() < rows.input_row0 + static_cast<long>(x.rows()))
      fail("input '" + spec.name + "' has " + std::to_string(in->rows()) + " rows, the call needs rows " +
           std::to_string(rows.input_row0) + " .. " + std::to_string(rows.input_row0 + static_cast<long>(x.rows()) - 1));
  }
}

void TorchScriptModel::Impl::match_schema(const std::string& source) {
  const auto& arguments = module.get_method("forward").function().getSchema().arguments();
  // arguments[0] is self.
  if (arguments.size() < 3)
    fail("forward takes " + std::to_string(arguments.size() > 0 ? arguments.size() - 1 : 0) +
         " argument(s); a diffsde network's forward takes x, t and then its inputs");
  x_name = arguments[1].name();
  t_name = arguments[2].name();
  std::string takes = x_name + ", " + t_name;
  for (std::size_t k = 3; k < arguments.size(); ++k) takes += ", " + arguments[k].name();
  for (std::size_t i = 0; i < options.inputs.size(); ++i) {
    const InputSpec& spec = options.inputs[i];
    for (std::size_t j = 0; j < i; ++j)
      if (options.inputs[j].name == spec.name) fail("input '" + spec.name + "' is declared twice (" + source + ")");
    const auto it = std::find_if(arguments.begin() + 3, arguments.end(),
                                 [&](const c10::Argument& a) { return a.name() == spec.name; });
    if (it == arguments.end())
      fail("input '" + spec.name + "' is declared (" + source + "), but forward has no argument '" + spec.name +
           "' after x and t; forward(" + takes + ")");
  }
  extra.clear();
  for (std::size_t k = 3; k < arguments.size(); ++k) {
    const c10::Argument& a = arguments[k];
    ExtraArgument e;
    e.name = a.name();
    e.kwarg_only = a.kwarg_only();
    e.has_default = a.default_value().has_value();
    e.takes_none = a.type()->kind() == c10::TypeKind::OptionalType || a.type()->kind() == c10::TypeKind::NoneType;
    const auto spec = std::find_if(options.inputs.begin(), options.inputs.end(),
                                   [&](const InputSpec& s) { return s.name == e.name; });
    if (spec == options.inputs.end()) {
      if (!e.has_default)
        fail("forward(" + takes + ") takes argument '" + e.name + "', which has no default and is not a declared " +
             "input: declare it in the model's `inputs` ([{\"name\": \"" + e.name +
             "\", \"type\": \"int64\" or \"float64\", ...}]) or in the file's diffsde.json metadata \"inputs\"");
    } else {
      e.input = static_cast<int>(spec - options.inputs.begin());
      if (spec->optional && !e.has_default && !e.takes_none)
        fail("input '" + e.name + "' is declared optional (" + source + "), but forward's argument '" + e.name +
             "' has no default value (e.g. " + e.name + ": Optional[Tensor] = None)");
    }
    extra.push_back(std::move(e));
  }
}

void TorchScriptModel::Impl::dry_run() const {
  Conditioning zeros;
  for (const InputSpec& spec : options.inputs) {
    std::vector<long> shape;
    long size = 1;
    for (long d : spec.shape) {
      shape.push_back(d < 0 ? 1 : d);
      size *= shape.back();
    }
    const auto count = static_cast<std::size_t>(size);
    zeros.add(spec.type == InputType::int64 ? ModelInput::ints(spec.name, shape, std::vector<std::int64_t>(count, 0))
                                            : ModelInput::floats(spec.name, shape, std::vector<double>(count, 0.0)));
  }
  ModelRows rows;
  rows.inputs = &zeros;
  const State x = State::Zero(1, dim);
  const double t = 0.5;
  torch::NoGradGuard no_grad;
  forward(x, 0, 1, discrete ? t * options.discrete_steps - 1.0 : t * options.time_scale, rows, false, nullptr,
          /*dry_run=*/true);
  // Benchmarks count the sampling calls alone.
  forward_ns = 0;
  forward_calls = 0;
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
  if (m.prediction == Prediction::score) throw Error("prediction must be eps, x0, v or velocity");
  m.discrete = options.time_input == "discrete";
  if (m.discrete && options.time_scale != 1.0)
    throw Error(options.path + ": time_scale applies to continuous time input (discrete input takes t N - 1)");
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
  std::string source = "in the model's `inputs`";
  if (options.inputs.empty() && meta.is_object() && meta.contains("inputs")) {
    source = "in the file's diffsde.json metadata \"inputs\"";
    try {
      options.inputs = input_specs_from_json(meta["inputs"], "inputs");
    } catch (const ConfigError& e) {
      throw Error(options.path + ": its diffsde.json metadata: " + e.what());
    }
  }
  const bool dry_run = options.dry_run;
  m.options = std::move(options);
  m.match_schema(source);
  if (dry_run) m.dry_run();
}

TorchScriptModel::~TorchScriptModel() = default;

int TorchScriptModel::dim() const { return impl_->dim; }
std::vector<int> TorchScriptModel::shape() const { return impl_->options.shape; }
const TorchModelOptions& TorchScriptModel::options() const { return impl_->options; }
const nlohmann::json& TorchScriptModel::metadata() const { return impl_->metadata; }
double TorchScriptModel::forward_seconds() const { return static_cast<double>(impl_->forward_ns.load()) * 1e-9; }
long TorchScriptModel::forward_calls() const { return impl_->forward_calls.load(); }

double TorchScriptModel::network_time(double t) const {
  return impl_->discrete ? t * impl_->options.discrete_steps - 1.0 : t * impl_->options.time_scale;
}

std::vector<InputSpec> TorchScriptModel::inputs() const { return impl_->options.inputs; }

void TorchScriptModel::eps(const ConstStateRef& x, double t, StateRef out) const { eps_rows(x, t, ModelRows{}, out); }

void TorchScriptModel::eps_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  eps_rows_retimed(x, t, t, rows, out);
}

void TorchScriptModel::Impl::output(const ConstStateRef& x, double t_net, const ModelRows& rows, StateRef out) const {
  check_call(x, rows);
  torch::NoGradGuard no_grad;
  const Eigen::Index count = x.rows();
  const Eigen::Index chunk = options.max_batch > 0 ? options.max_batch : std::max<Eigen::Index>(count, 1);
  for (Eigen::Index r0 = 0; r0 < count; r0 += chunk) {
    const Eigen::Index n = std::min(chunk, count - r0);
    const torch::Tensor y = forward(x, r0, n, t_net, rows, false).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* src = y.data_ptr<double>();
    for (Eigen::Index r = 0; r < n; ++r)
      std::memcpy(&out(r0 + r, 0), src + r * dim, sizeof(double) * static_cast<std::size_t>(dim));
  }
}

bool TorchScriptModel::has_data_prediction() const { return predicts_data(impl_->prediction); }

void TorchScriptModel::x0_rows(const ConstStateRef& x, double t, const ModelRows& rows, StateRef out) const {
  const Impl& m = *impl_;
  if (!predicts_data(m.prediction))
    m.fail("predicts " + to_string(m.prediction) + ", which gives no data prediction x0 of its own");
  m.output(x, network_time(t), rows, out);
  const ScheduleAt s = m.schedule->at(t);
  to_x0(m.prediction, x, out, s.alpha, s.sigma, out);
}

void TorchScriptModel::eps_rows_retimed(const ConstStateRef& x, double t, double t_network, const ModelRows& rows,
                                        StateRef out) const {
  const Impl& m = *impl_;
  m.output(x, network_time(t_network), rows, out);
  if (m.prediction != Prediction::eps) {
    const ScheduleAt s = m.schedule->at(t);
    to_eps(m.prediction, x, out, s.alpha, s.sigma, out);
  }
}

bool TorchScriptModel::has_jvp() const { return true; }

void TorchScriptModel::eps_jvp(const ConstStateRef& x, double t, const ConstStateRef& v, StateRef eps_out,
                               StateRef jvp_out) const {
  eps_jvp_rows(x, t, ModelRows{}, v, eps_out, jvp_out);
}

void TorchScriptModel::eps_jvp_rows(const ConstStateRef& x, double t, const ModelRows& rows, const ConstStateRef& v,
                                    StateRef eps_out, StateRef jvp_out) const {
  // J v by two reverse passes: g(u) = J^T u is linear in u, so d<g(u), v>/du = J v.
  const Impl& m = *impl_;
  m.check_call(x, rows);
  torch::AutoGradMode grad_mode(true);
  const Eigen::Index count = x.rows();
  const Eigen::Index chunk = m.options.max_batch > 0 ? m.options.max_batch : std::max<Eigen::Index>(count, 1);
  // The step's coefficients, for an output that is not eps (t may be any network time
  // otherwise, e.g. EDM's c_noise, outside the schedule's range).
  const ScheduleAt s = m.prediction != Prediction::eps ? m.schedule->at(t) : ScheduleAt{};
  for (Eigen::Index r0 = 0; r0 < count; r0 += chunk) {
    const Eigen::Index n = std::min(chunk, count - r0);
    torch::Tensor xt;
    torch::Tensor y = m.forward(x, r0, n, network_time(t), rows, true, &xt);
    // eps as a function of the network output, in the network's dtype.
    torch::Tensor e = y;
    if (m.prediction == Prediction::x0) e = (xt - s.alpha * y) / s.sigma;
    if (m.prediction == Prediction::v) e = s.sigma * xt + s.alpha * y;
    if (m.prediction == Prediction::velocity) e = (xt + s.alpha * y) / (s.alpha + s.sigma);
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

std::vector<InputSpec> input_specs_from_json(const nlohmann::json& value, const std::string& path) {
  using nlohmann::json;
  if (!value.is_array())
    throw ConfigError(path, "expected a list of inputs [{\"name\": \"y\", \"type\": \"int64\", ...}], got " +
                                json_type_name(value));
  std::vector<InputSpec> specs;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const json& e = value[i];
    const std::string at = join_path(path, i);
    if (!e.is_object())
      throw ConfigError(at, "expected an object {\"name\": ..., \"type\": \"int64\" | \"float64\", ...}, got " +
                                json_type_name(e));
    check_keys(e, {"name", "type", "shape", "classes", "null", "optional", "description"}, at);
    const auto integer = [&](const char* key) {
      const json& v = e.at(key);
      if (!v.is_number_integer()) throw ConfigError(join_path(at, key), "expected an integer, got " + v.dump());
      return v.get<std::int64_t>();
    };
    InputSpec spec;
    if (!e.contains("name") || !e.at("name").is_string() || e.at("name").get<std::string>().empty())
      throw ConfigError(join_path(at, "name"), "is required: the name of forward's argument (e.g. \"y\")");
    spec.name = e.at("name").get<std::string>();
    for (const InputSpec& before : specs)
      if (before.name == spec.name) throw ConfigError(join_path(at, "name"), "'" + spec.name + "' is declared twice");
    if (!e.contains("type")) throw ConfigError(join_path(at, "type"), "is required: \"int64\" or \"float64\"");
    const json& type = e.at("type");
    if (type == "int64")
      spec.type = InputType::int64;
    else if (type == "float64")
      spec.type = InputType::float64;
    else
      throw ConfigError(join_path(at, "type"), "expected \"int64\" (labels) or \"float64\" (embeddings), got " +
                                                   type.dump());
    if (e.contains("shape")) {
      const json& shape = e.at("shape");
      if (!shape.is_array())
        throw ConfigError(join_path(at, "shape"), "expected the per-sample shape as a list ([] for a scalar), got " +
                                                      json_type_name(shape));
      for (const json& d : shape) {
        if (!d.is_number_integer() || (d.get<long>() < 1 && d.get<long>() != -1))
          throw ConfigError(join_path(at, "shape"), "entries must be integers >= 1 or -1 (any length), got " + d.dump());
        spec.shape.push_back(d.get<long>());
      }
    }
    const bool ints = spec.type == InputType::int64;
    for (const char* key : {"classes", "null"})
      if (e.contains(key) && !ints)
        throw ConfigError(join_path(at, key), "is for int64 (label) inputs; '" + spec.name + "' is float64");
    if (e.contains("classes")) {
      spec.classes = static_cast<long>(integer("classes"));
      if (spec.classes < 0) throw ConfigError(join_path(at, "classes"), "must be >= 0 (0: labels not checked)");
    }
    if (e.contains("null")) {
      spec.has_null_label = true;
      spec.null_label = integer("null");
    }
    if (e.contains("optional")) {
      if (!e.at("optional").is_boolean()) throw ConfigError(join_path(at, "optional"), "expected true or false");
      spec.optional = e.at("optional").get<bool>();
    }
    if (e.contains("description")) {
      if (!e.at("description").is_string()) throw ConfigError(join_path(at, "description"), "expected a string");
      spec.description = e.at("description").get<std::string>();
    }
    specs.push_back(std::move(spec));
  }
  return specs;
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
  o.time_scale = p.number("time_scale");
  if (!(o.time_scale > 0) || !std::isfinite(o.time_scale)) p.fail("time_scale", "must be finite and > 0");
  if (p.integer("max_batch") < 0) p.fail("max_batch", "must be >= 0 (0: whole batch)");
  o.max_batch = static_cast<int>(p.integer("max_batch"));
  if (p.integer("threads") < 0) p.fail("threads", "must be >= 0");
  o.threads = static_cast<int>(p.integer("threads"));
  if (p.has("inputs")) o.inputs = input_specs_from_json(p.value("inputs"), p.path_of("inputs"));
  // EDM's preconditioning: the network predicts EDM's F from (c_in x, c_noise); the sign of
  // c_out follows `prediction` (eps: EDM's denoiser, v: the v-prediction denoiser).
  const bool edm = p.string("preconditioning") == "edm";
  EdmPreconditioning edm_options;
  if (edm) {
    if (o.prediction == "v") {
      edm_options.output_sign = -1.0;
    } else if (!o.prediction.empty() && o.prediction != "eps") {
      p.fail("prediction", "with EDM preconditioning the network's output is F, combined as EDM's denoiser "
                           "(\"eps\", the default) or as the v-prediction denoiser (\"v\"); got \"" +
                               o.prediction + "\"");
    }
    o.prediction = "eps";
    if (!o.time_input.empty() && o.time_input != "continuous")
      p.fail("time_input", "with EDM preconditioning the network takes c_noise = log(sigma)/4 as its time; "
                           "discrete time input does not apply");
    o.time_input = "continuous";
    edm_options.sigma_data = p.number("sigma_data");
    if (!(edm_options.sigma_data > 0) || !std::isfinite(edm_options.sigma_data))
      p.fail("sigma_data", "must be finite and > 0");
  } else if (p.given("sigma_data")) {
    p.fail("sigma_data", "applies with \"preconditioning\": \"edm\" only");
  }
  try {
    if (edm)
      return with_edm_preconditioning(std::make_shared<TorchScriptModel>(ctx.schedule, std::move(o)), ctx.schedule,
                                      edm_options);
    return std::make_unique<TorchScriptModel>(ctx.schedule, std::move(o));
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(p.path(), e.what());
  }
}

// The classifier behind a FeatureMap: its module, the method called (`features` or
// `forward`), input shape and a lock (one call at a time).
struct FeatureNetwork {
  std::string path;
  std::string method = "features";
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
        y = module.get_method(method)({xt});
      } catch (const c10::Error& e) {
        throw Error(path + ": " + method + " failed: " + torch_error_message(e));
      }
      if (!y.isTensor() || y.toTensor().dim() != 2 || y.toTensor().size(0) != n)
        throw Error(path + ": " + method + " must return a (B, K) tensor");
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
  net->method = o.method;
  net->device = parse_torch_device(o.device);
  nlohmann::json metadata;
  net->module = load_torchscript(o.path, net->device, &metadata);
  net->module.eval();
  if (!net->module.find_method(o.method))
    throw IoError(o.path, "has no method '" + o.method + "' (train one with {\"task\": \"classifier\"})");
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
