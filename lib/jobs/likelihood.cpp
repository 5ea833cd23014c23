// PF-ODE likelihoods (see likelihood.hpp and docs/likelihood.md).
//
// Each sample's augmented ODE is small (d + K values), so its state is a plain
// std::vector<double> (odeint's range algebra), integrated by pf_ode's steppers and loop
// (odeint_integrator.hpp) with the likelihood's own limits.
#include "diffsde/likelihood.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "diffsde/error.hpp"
#include "diffsde/noise.hpp"
#include "diffsde/solvers/odeint_integrator.hpp"
#include "diffsde/vector_field.hpp"

namespace diffsde {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)
constexpr double kLn2 = 0.69314718055994530941723212145818;

template <class Enum>
Enum from_string(const std::string& s, const std::vector<Enum>& all, const char* what) {
  std::string known;
  for (Enum e : all) {
    if (to_string(e) == s) return e;
    known += (known.empty() ? "" : ", ") + to_string(e);
  }
  throw Error("unknown " + std::string(what) + " '" + s + "'; known: " + known);
}

using Vec = std::vector<double>;

// ---------------------------------------------------------------------------------
// The augmented right-hand side of one sample: y = (x, D_1..D_m), m = 1 (exact trace) or
// K (Hutchinson). One evaluation is one eps_jvp call on `rows` copies of x, one direction
// per row: the unit vectors (exact) or the sample's probes.
class AugmentedRhs {
 public:
  AugmentedRhs(const Model& model, const Schedule& schedule, const LikelihoodOptions& options)
      : model_(model), schedule_(schedule), options_(options), d_(model.dim()) {
    const bool exact = options.trace == TraceMethod::exact;
    rows_ = exact ? d_ : options.probes;
    accumulators_ = exact ? 1 : options.probes;
    x_.resize(rows_, d_);
    v_.resize(rows_, d_);
    eps_.resize(rows_, d_);
    jvp_.resize(rows_, d_);
    if (exact) v_.matrix().setIdentity();
  }

  int size() const { return d_ + accumulators_; }
  int accumulators() const { return accumulators_; }

  // Draws the probes of sample `sample` (Hutchinson): probe k is draw k of the probe stream;
  // the model's inputs are those of data row `row`, shared by the evaluation's rows.
  void set_sample(std::uint64_t sample, Eigen::Index row) {
    nfe_ = 0;
    rows_of_call_ = ModelRows{};
    rows_of_call_.first_sample = sample;
    rows_of_call_.repeat = rows_;  // every row of a call is this sample
    if (options_.cond && !options_.cond->empty()) {
      sample_cond_ = options_.cond->slice(static_cast<long>(row), 1);
      rows_of_call_.inputs = &sample_cond_;
    }
    if (options_.trace == TraceMethod::exact) return;
    for (int k = 0; k < rows_; ++k) {
      philox_normals(options_.seed, NoiseStream::probe, sample, static_cast<std::uint32_t>(k),
                     v_.row(k).data(), d_);
      if (options_.distribution == ProbeDistribution::rademacher)
        for (int j = 0; j < d_; ++j) v_(k, j) = v_(k, j) < 0.0 ? -1.0 : 1.0;
    }
  }

  void operator()(const Vec& y, Vec& dydt, double t) {
    const FieldAt c = field_at(schedule_, t);
    const Eigen::Map<const Eigen::Array<double, 1, Eigen::Dynamic>> x(y.data(), d_);
    x_.rowwise() = x;
    if (options_.jvp == JvpMethod::model)
      model_.eps_jvp_rows(x_, t, rows_of_call_, v_, eps_, jvp_);
    else
      eps_jvp_finite_difference(model_, rows_of_call_, x_, t, v_, eps_, jvp_, options_.fd_step);
    ++nfe_;
    // The PF-ODE's right-hand side f x + g^2/(2 sigma) eps (vector_field.hpp).
    const double e = c.ode_eps();
    for (int j = 0; j < d_; ++j)
      dydt[static_cast<std::size_t>(j)] = c.f * y[static_cast<std::size_t>(j)] + e * eps_(0, j);
    // The identity part of div f is exact (f d); only tr(d eps/dx) is estimated.
    const double linear = c.f * static_cast<double>(d_);
    if (options_.trace == TraceMethod::exact) {
      dydt[static_cast<std::size_t>(d_)] = linear + e * jvp_.matrix().trace();
    } else {
      for (int k = 0; k < accumulators_; ++k)
        dydt[static_cast<std::size_t>(d_ + k)] = linear + e * (v_.row(k) * jvp_.row(k)).sum();
    }
  }

  long nfe() const { return nfe_; }

 private:
  const Model& model_;
  const Schedule& schedule_;
  const LikelihoodOptions& options_;
  int d_, rows_ = 0, accumulators_ = 0;
  State x_, v_, eps_, jvp_;
  Conditioning sample_cond_;
  ModelRows rows_of_call_;
  long nfe_ = 0;
};

// A step that failed: where, and why (turned into a NumericalError naming the sample).
struct StepFailure {
  long step;
  double t;
  std::string message;
};

bool all_finite(const Vec& y) {
  for (double v : y)
    if (!std::isfinite(v)) return false;
  return true;
}

// The likelihood's limits on the adaptive loop: per sample, over its whole [t_min, t_max],
// and an underflow never below 16 eps absolute (pf_ode keeps its own; see pf_ode.cpp).
constexpr long kMaxAttempts = 1000000;

OdeintLoopSettings loop_settings(const LikelihoodOptions& o) {
  OdeintLoopSettings loop;
  loop.fixed_steps = o.steps;
  loop.max_attempts = kMaxAttempts;
  loop.underflow_floor = 1.0;
  return loop;
}

// One sample's steps: counted, and the state checked after each one.
class SampleSteps final : public OdeintObserver<Vec> {
 public:
  void accepted(const Vec& y, double t) override {
    ++accepted_;
    if (!all_finite(y)) throw StepFailure{accepted_, t, "the augmented state is not finite"};
  }
  void rejected(const Vec& /*y*/, double /*t*/) override { ++rejected_; }
  long accepted() const { return accepted_; }
  long rejected() const { return rejected_; }

 private:
  long accepted_ = 0, rejected_ = 0;
};

struct StepCounts {
  long accepted = 0, rejected = 0;
};

// Integrates one sample's y from t0 to t1 afresh (h_init, no history), as its own ODE.
StepCounts integrate_sample(OdeintIntegrator<Vec>& integrator, AugmentedRhs& rhs, Vec& y, double t0,
                            double t1) {
  SampleSteps steps;
  integrator.restart();
  try {
    integrator.advance(OdeintRhs<Vec>(rhs), y, t0, t1, &steps);
  } catch (const OdeintStepFailure& f) {
    if (f.reason() == OdeintStepFailure::Reason::too_many_attempts)
      throw StepFailure{steps.accepted(), f.t(),
                        "more than " + std::to_string(kMaxAttempts) +
                            " step attempts; the tolerance may be too tight for this model"};
    throw StepFailure{steps.accepted(), f.t(),
                      "step size underflow (dt = " + format_double(f.dt()) +
                          "): the error estimate stays too large (non-finite values, "
                          "or a tolerance below rounding)"};
  }
  return {steps.accepted(), steps.rejected()};
}

// Mean and standard error of the mean of n values.
std::pair<double, double> mean_stderr(const double* v, int n) {
  double mean = 0.0;
  for (int i = 0; i < n; ++i) mean += v[i];
  mean /= n;
  if (n < 2) return {mean, 0.0};
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += (v[i] - mean) * (v[i] - mean);
  return {mean, std::sqrt(ss / (n - 1) / n)};
}

}  // namespace

// ---------------------------------------------------------------------------------
// Names

std::string to_string(TraceMethod method) {
  return method == TraceMethod::exact ? "exact" : "hutchinson";
}
std::string to_string(ProbeDistribution distribution) {
  return distribution == ProbeDistribution::rademacher ? "rademacher" : "gaussian";
}
std::string to_string(JvpMethod method) {
  return method == JvpMethod::model ? "model" : "finite_difference";
}
std::string to_string(DataKind kind) {
  return kind == DataKind::continuous ? "continuous" : "image8";
}
TraceMethod trace_method_from_string(const std::string& s) {
  return from_string(s, std::vector<TraceMethod>{TraceMethod::exact, TraceMethod::hutchinson},
                     "trace method");
}
ProbeDistribution probe_distribution_from_string(const std::string& s) {
  return from_string(
      s, std::vector<ProbeDistribution>{ProbeDistribution::rademacher, ProbeDistribution::gaussian},
      "probe distribution");
}
JvpMethod jvp_method_from_string(const std::string& s) {
  return from_string(s, std::vector<JvpMethod>{JvpMethod::model, JvpMethod::finite_difference},
                     "jvp method");
}
DataKind data_kind_from_string(const std::string& s) {
  return from_string(s, std::vector<DataKind>{DataKind::continuous, DataKind::image8}, "data kind");
}

// ---------------------------------------------------------------------------------
// Options

bool LikelihoodOptions::is_valid(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error != nullptr) *error = message;
    return false;
  };
  std::string ode_error;
  if (!ode.is_valid(&ode_error)) return fail(ode_error);
  if (!is_adaptive(ode.stepper) && steps < 1)
    return fail("steps must be >= 1, got " + std::to_string(steps));
  if (!(t_min > 0) || !std::isfinite(t_min))
    return fail("t_min must be finite and > 0 (the ODE divides by sigma(t), 0 at t = 0), got " +
                format_double(t_min));
  if (!std::isfinite(t_max)) return fail("t_max must be finite, got " + format_double(t_max));
  if (trace == TraceMethod::hutchinson && probes < 2)
    return fail("probes must be >= 2 (a standard error needs two), got " + std::to_string(probes));
  if (jvp == JvpMethod::finite_difference && (!(fd_step > 0) || !std::isfinite(fd_step)))
    return fail("fd_step must be finite and > 0, got " + format_double(fd_step));
  if (threads < 1) return fail("threads must be >= 1, got " + std::to_string(threads));
  return true;
}

// ---------------------------------------------------------------------------------
// Helpers

double standard_normal_log_density(const double* x, int dim) {
  double ss = 0.0;
  for (int j = 0; j < dim; ++j) ss += x[j] * x[j];
  return -0.5 * (static_cast<double>(dim) * kLog2Pi + ss);
}

double prior_log_density(const double* x, int dim, double std) {
  // N(0, I) in its own arithmetic, so that the schedules whose prior is standard (VP, sub-VP,
  // flow) give the same bits as before the general prior.
  if (std == 1.0) return standard_normal_log_density(x, dim);
  double ss = 0.0;
  for (int j = 0; j < dim; ++j) ss += (x[j] / std) * (x[j] / std);
  return -0.5 * (static_cast<double>(dim) * kLog2Pi + ss) - static_cast<double>(dim) * std::log(std);
}

double dequantization_offset_nats(int dim, DataKind kind) {
  return kind == DataKind::image8 ? static_cast<double>(dim) * std::log(127.5) : 0.0;
}

double bits_per_dim(double nll, int dim, DataKind kind) {
  return (nll + dequantization_offset_nats(dim, kind)) / (static_cast<double>(dim) * kLn2);
}

std::vector<int> image8_levels(const State& data) {
  std::vector<int> levels(static_cast<std::size_t>(data.size()));
  for (Eigen::Index r = 0; r < data.rows(); ++r) {
    for (Eigen::Index c = 0; c < data.cols(); ++c) {
      const double x = data(r, c);
      const double k = std::nearbyint((x + 1.0) * 127.5);
      if (!std::isfinite(x) || k < 0 || k > 255 || std::fabs(x - (k / 127.5 - 1.0)) > 1e-6)
        throw Error("row " + std::to_string(r) + ", column " + std::to_string(c) + ": value " +
                    format_double(x) +
                    " is not an 8-bit level k / 127.5 - 1 (k = 0..255) within 1e-6");
      levels[static_cast<std::size_t>(r * data.cols() + c)] = static_cast<int>(k);
    }
  }
  return levels;
}

State dequantize_image8(const State& data, std::uint64_t seed, std::uint64_t first_sample) {
  const std::vector<int> levels = image8_levels(data);
  State out(data.rows(), data.cols());
  std::vector<double> z(static_cast<std::size_t>(data.cols()));
  for (Eigen::Index r = 0; r < data.rows(); ++r) {
    philox_normals(seed, NoiseStream::dequantize, first_sample + static_cast<std::uint64_t>(r), 0,
                   z.data(), static_cast<int>(data.cols()));
    for (Eigen::Index c = 0; c < data.cols(); ++c) {
      // Phi(z) is uniform on (0, 1); the bin of level k is [k - 1/2, k + 1/2) / 127.5 - 1.
      const double u = 0.5 * std::erfc(-z[static_cast<std::size_t>(c)] / std::sqrt(2.0));
      const int k = levels[static_cast<std::size_t>(r * data.cols() + c)];
      out(r, c) = (static_cast<double>(k) + u - 0.5) / 127.5 - 1.0;
    }
  }
  return out;
}

void eps_jvp_finite_difference(const Model& model, const ModelRows& rows, const ConstStateRef& x, double t,
                               const ConstStateRef& v, StateRef eps_out, StateRef jvp_out,
                               double fd_step) {
  if (v.rows() != x.rows() || v.cols() != x.cols() || eps_out.rows() != x.rows() ||
      eps_out.cols() != x.cols() || jvp_out.rows() != x.rows() || jvp_out.cols() != x.cols())
    throw Error("eps_jvp_finite_difference: x, v, eps_out and jvp_out must have one shape");
  model.eps_rows(x, t, rows, eps_out);
  const Eigen::Index n = x.rows();
  BatchVector norm = v.matrix().rowwise().norm().array();
  BatchVector h(n);
  State plus(n, x.cols()), minus(n, x.cols());
  for (Eigen::Index r = 0; r < n; ++r) {
    h(r) = fd_step * (1.0 + x.row(r).abs().maxCoeff());
    const double scale = norm(r) > 0 ? h(r) / norm(r) : 0.0;
    plus.row(r) = x.row(r) + scale * v.row(r);
    minus.row(r) = x.row(r) - scale * v.row(r);
  }
  model.eps_rows(plus, t, rows, plus);
  model.eps_rows(minus, t, rows, minus);
  for (Eigen::Index r = 0; r < n; ++r)
    jvp_out.row(r) = (plus.row(r) - minus.row(r)) * (norm(r) / (2.0 * h(r)));
}

// ---------------------------------------------------------------------------------
// The likelihood

LikelihoodResult pf_ode_likelihood(const Model& model, const Schedule& schedule, const State& data,
                                   const LikelihoodOptions& options) {
  std::string error;
  if (!options.is_valid(&error)) throw Error("likelihood: " + error);
  const int d = model.dim();
  if (data.cols() != d)
    throw Error("likelihood: the data has " + std::to_string(data.cols()) +
                " columns, the model's dim is " + std::to_string(d));
  if (options.jvp == JvpMethod::model && !model.has_jvp())
    throw Error("likelihood: model '" + model.name() +
                "' has no Jacobian-vector product (eps_jvp); the finite-difference fallback "
                "(jvp: finite_difference) can stand in for it");
  const double t_max = options.t_max > 0 ? options.t_max : schedule.t_max();
  if (!(t_max > options.t_min) || t_max > schedule.t_max())
    throw Error("likelihood: need t_min < t_max <= the schedule's t_max = " +
                format_double(schedule.t_max()) + ", got t_min = " + format_double(options.t_min) +
                " and t_max = " + format_double(t_max));
  // f = d log alpha/dt diverges where alpha reaches 0 (flow at t = 1, a zero-terminal-SNR
  // vp_discrete at t = 1): the ODE cannot be integrated up to there.
  if (!(schedule.at(t_max).alpha > 0))
    throw Error("likelihood: t_max must be below the time where alpha = 0 (the PF-ODE's f = d log alpha/dt "
                "diverges there; " + schedule.name() + " has alpha(" + format_double(t_max) +
                ") = 0): end below it, e.g. t_max = 0.999");
  // The prior at t_max: N(0, prior_std(t_max)^2 I).
  const double prior_std = schedule.prior_std(t_max);
  if (!(prior_std > 0) || !std::isfinite(prior_std))
    throw Error("likelihood: the " + schedule.name() + " schedule's prior standard deviation at t_max = " +
                format_double(t_max) + " is " + format_double(prior_std));

  if (options.cond)
    for (const auto& in : options.cond->inputs())
      if (in.rows() != 1 && in.rows() != data.rows())
        throw Error("likelihood: input '" + in.name() + "' has " + std::to_string(in.rows()) + " rows, the data " +
                    std::to_string(data.rows()));
  const auto start = std::chrono::steady_clock::now();
  const Eigen::Index n = data.rows();
  LikelihoodResult result;
  result.t_min = options.t_min;
  result.t_max = t_max;
  result.x = options.data == DataKind::image8
                 ? dequantize_image8(data, options.seed, options.first_sample)
                 : data;
  const int m = options.trace == TraceMethod::exact ? 1 : options.probes;
  result.nll.resize(n);
  result.nll_stderr.resize(n);
  result.bpd.resize(n);
  result.bpd_stderr.resize(n);
  result.prior_logp.resize(n);
  result.delta_logp.resize(n);
  result.probe_nll.resize(n, m);
  result.x_T.resize(n, d);
  result.nfe.assign(static_cast<std::size_t>(n), 0);
  result.accepted.assign(static_cast<std::size_t>(n), 0);
  result.rejected.assign(static_cast<std::size_t>(n), 0);

  std::atomic<Eigen::Index> next{0};
  std::mutex failure_mutex, progress_mutex;
  long rows_done = 0;
  Eigen::Index failed_row = n;
  std::exception_ptr failure;

  auto work = [&]() {
    AugmentedRhs rhs(model, schedule, options);
    const std::unique_ptr<OdeintIntegrator<Vec>> integrator =
        make_odeint_integrator<Vec>(options.ode, loop_settings(options));
    Vec y(static_cast<std::size_t>(rhs.size()));
    for (Eigen::Index r = next++; r < n; r = next++) {
      const std::uint64_t sample = options.first_sample + static_cast<std::uint64_t>(r);
      try {
        rhs.set_sample(sample, r);
        std::fill(y.begin(), y.end(), 0.0);
        for (int j = 0; j < d; ++j) y[static_cast<std::size_t>(j)] = result.x(r, j);
        StepCounts counts;
        try {
          counts = integrate_sample(*integrator, rhs, y, options.t_min, t_max);
        } catch (const StepFailure& f) {
          throw NumericalError(f.step, f.t,
                               "likelihood of data row " + std::to_string(r) + " (sample " +
                                   std::to_string(sample) + "): " + f.message);
        }
        const double prior = prior_log_density(y.data(), d, prior_std);
        for (int k = 0; k < m; ++k)
          result.probe_nll(r, k) = -(prior + y[static_cast<std::size_t>(d + k)]);
        const auto [nll, se] = mean_stderr(&result.probe_nll(r, 0), m);
        result.nll(r) = nll;
        result.nll_stderr(r) = se;
        result.bpd(r) = bits_per_dim(nll, d, options.data);
        result.bpd_stderr(r) = se / (static_cast<double>(d) * kLn2);
        result.prior_logp(r) = prior;
        result.delta_logp(r) = -nll - prior;
        for (int j = 0; j < d; ++j) result.x_T(r, j) = y[static_cast<std::size_t>(j)];
        result.nfe[static_cast<std::size_t>(r)] = rhs.nfe();
        result.accepted[static_cast<std::size_t>(r)] = counts.accepted;
        result.rejected[static_cast<std::size_t>(r)] = counts.rejected;
        if (options.progress) {
          const std::lock_guard<std::mutex> lock(progress_mutex);
          ++rows_done;
          options.progress(static_cast<double>(rows_done) / static_cast<double>(n), rows_done, static_cast<long>(n));
        }
      } catch (...) {
        // Keep the failure of the lowest row, so that the error does not depend on threads.
        const std::lock_guard<std::mutex> lock(failure_mutex);
        if (r < failed_row) {
          failed_row = r;
          failure = std::current_exception();
        }
        return;
      }
    }
  };

  const int threads =
      static_cast<int>(std::min<Eigen::Index>(options.threads, std::max<Eigen::Index>(n, 1)));
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(work);
    for (auto& thread : pool) thread.join();
  }
  if (failure) std::rethrow_exception(failure);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace diffsde
