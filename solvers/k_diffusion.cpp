#include "diffsde/solvers/k_diffusion.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "diffsde/error.hpp"
#include "diffsde/registry.hpp"
#include "diffsde/solvers/ddim.hpp"
#include "diffsde/solvers/exponential.hpp"

namespace diffsde {

namespace {

constexpr int kMaxLmsOrder = 4;

double sigma_ve_of(const ScheduleAt& a) { return a.sigma / a.alpha; }

// Exact integral of the Lagrange basis polynomials over [sigma_s, sigma_t]: in the scaled
// variable w = (tau - sigma_s) / H, H = sigma_t - sigma_s, these are H times the
// Adams–Bashforth weights int_0^1 l_j(w) dw.
void lms_coefficients_into(const double* nodes, int k, double sigma_s, double sigma_t, double* out) {
  const double H = sigma_t - sigma_s;
  if (H == 0) {
    for (int j = 0; j < k; ++j) out[j] = 0;
    return;
  }
  std::array<double, kMaxLmsOrder> w{};
  for (int j = 0; j < k; ++j) w[static_cast<std::size_t>(j)] = (nodes[j] - sigma_s) / H;
  const std::array<double, 4> c = adams_bashforth_weights(w, k);
  for (int j = 0; j < k; ++j) out[j] = H * c[static_cast<std::size_t>(j)];
}

}  // namespace

std::vector<double> lms_coefficients(const std::vector<double>& nodes, double sigma_s, double sigma_t) {
  if (nodes.empty() || nodes.size() > static_cast<std::size_t>(kMaxLmsOrder))
    throw Error("lms_coefficients: 1 to 4 nodes, got " + std::to_string(nodes.size()));
  std::vector<double> out(nodes.size());
  lms_coefficients_into(nodes.data(), static_cast<int>(nodes.size()), sigma_s, sigma_t, out.data());
  return out;
}

std::string KDiffusionSolver::name_of(Method method) {
  switch (method) {
    case Method::euler: return "euler";
    case Method::euler_ancestral: return "euler_ancestral";
    case Method::heun: return "heun";
    case Method::dpm2: return "dpm2";
    case Method::dpm2_ancestral: return "dpm2_ancestral";
    case Method::lms: return "lms";
  }
  return "?";
}

KDiffusionSolver::KDiffusionSolver(Options options) : options_(options) {
  const std::string name = name_of(options_.method);
  if (!(options_.eta >= 0)) throw Error(name + ": eta must be >= 0");
  if (!(options_.s_noise >= 0)) throw Error(name + ": s_noise must be >= 0");
  if (!(options_.s_churn >= 0)) throw Error(name + ": s_churn must be >= 0");
  if (!(options_.s_tmin <= options_.s_tmax)) throw Error(name + ": needs s_tmin <= s_tmax");
  if (options_.order < 1 || options_.order > kMaxLmsOrder) throw Error(name + ": order must be 1 to 4");
}

bool KDiffusionSolver::stochastic() const {
  switch (options_.method) {
    case Method::euler_ancestral:
    case Method::dpm2_ancestral: return options_.eta > 0;
    case Method::heun: return options_.s_churn > 0;
    default: return false;
  }
}

SolverTraits KDiffusionSolver::traits() const {
  SolverTraits t;
  t.name = name_of(options_.method);
  t.stochastic = stochastic();
  switch (options_.method) {
    case Method::euler:
    case Method::euler_ancestral: t.order = 1; t.evals_per_step = 1; break;
    case Method::heun:
    case Method::dpm2:
    case Method::dpm2_ancestral: t.order = t.stochastic ? 1 : 2; t.evals_per_step = 2; break;
    case Method::lms:
      t.order = options_.order;
      t.evals_per_step = 1;
      t.warmup_steps = options_.order - 1;
      break;
  }
  if (t.stochastic) {
    if (options_.method == Method::heun)
      t.noise_use =
          "one standard-normal draw of shape batch x dim per step whose churn raises sigma_ve "
          "(gamma > 0), made before the step's first evaluation; no draw elsewhere";
    else
      t.noise_use =
          "one standard-normal draw of shape batch x dim per step with sigma_up > 0, made after the "
          "step's evaluations; the final step to t = 0 draws none";
  }
  return t;
}

void KDiffusionSolver::init(SolverContext& context, const State& x, const std::vector<double>& times) {
  const std::string name = name_of(options_.method);
  for (std::size_t i = 0; i + 1 < times.size(); ++i)
    if (!(times[i + 1] < times[i])) throw Error(name + " runs backwards in time: the grid must decrease");
  steps_ = times.empty() ? 0 : times.size() - 1;
  const ScheduleAt top = context.schedule().at(context.schedule().t_max());
  sigma_ve_max_ = sigma_ve_of(top);
  const auto rows = x.rows(), cols = x.cols();
  x_ve_.resize(rows, cols);
  eps_.resize(rows, cols);
  tmp_.resize(rows, cols);
  if (options_.method == Method::heun || options_.method == Method::dpm2 ||
      options_.method == Method::dpm2_ancestral)
    eps2_.resize(rows, cols);
  if (stochastic()) z_.resize(rows, cols);
  history_.clear();
  history_sigma_.assign(static_cast<std::size_t>(kMaxLmsOrder), 0.0);
  history_size_ = 0;
  if (options_.method == Method::lms)
    for (int k = 0; k < options_.order; ++k) history_.emplace_back(rows, cols);
}

void KDiffusionSolver::eps_at(SolverContext& context, const State& x_ve, double t_vp, double alpha_vp,
                              State& out) {
  tmp_ = alpha_vp * x_ve;
  context.eps(tmp_, t_vp, out);
}

void KDiffusionSolver::euler_to(double sigma_from, double sigma_to) { x_ve_ += (sigma_to - sigma_from) * eps_; }

void KDiffusionSolver::dpm2_to(SolverContext& context, double sigma_from, double lambda_from, double sigma_to) {
  if (!(sigma_to > 0)) {  // final step to sigma = 0: Euler (the midpoint would be at 0)
    euler_to(sigma_from, 0.0);
    return;
  }
  const double lambda_mid = 0.5 * (lambda_from - std::log(sigma_to));
  const double sigma_mid = std::exp(-lambda_mid);
  const double t_mid = context.schedule().t_of_lambda(lambda_mid);
  const double alpha_mid = context.schedule().alpha(t_mid);
  // x_ve at the midpoint, then its eps; x_ve_ moves with the midpoint slope.
  eps2_ = x_ve_ + (sigma_mid - sigma_from) * eps_;
  eps_at(context, eps2_, t_mid, alpha_mid, eps2_);
  x_ve_ += (sigma_to - sigma_from) * eps2_;
}

void KDiffusionSolver::lms_step(double sigma_s, double sigma_t) {
  const int k = static_cast<int>(history_size_);
  std::array<double, kMaxLmsOrder> c{};
  lms_coefficients_into(history_sigma_.data(), k, sigma_s, sigma_t, c.data());
  for (int j = 0; j < k; ++j) x_ve_ += c[static_cast<std::size_t>(j)] * history_[static_cast<std::size_t>(j)];
}

void KDiffusionSolver::step(SolverContext& context, std::size_t /*i*/, double t0, double t1, State& x) {
  const Schedule& sch = context.schedule();
  const ScheduleAt s = sch.at(t0);
  const ScheduleAt t = sch.at(t1);
  if (!(s.sigma > 0))
    throw Error(name_of(options_.method) + " cannot start a step at sigma = 0 (t = 0)");
  const double sv_s = sigma_ve_of(s), sv_t = sigma_ve_of(t);
  x_ve_ = x / s.alpha;

  switch (options_.method) {
    case Method::euler:
      context.eps(x, t0, eps_);
      euler_to(sv_s, sv_t);
      break;
    case Method::euler_ancestral: {
      context.eps(x, t0, eps_);
      // sigma_down and sigma_up: the VP split divided by alpha_t.
      const AncestralSplit a = ancestral_split(s, t, options_.eta);
      euler_to(sv_s, a.dir / t.alpha);
      if (a.noise > 0) {
        context.noise().normal(z_);
        x_ve_ += (options_.s_noise * a.noise / t.alpha) * z_;
      }
      break;
    }
    case Method::heun: {
      double gamma = 0;
      if (options_.s_churn > 0 && options_.s_tmin <= sv_s && sv_s <= options_.s_tmax)
        gamma = std::min(options_.s_churn / static_cast<double>(std::max<std::size_t>(steps_, 1)),
                         std::sqrt(2.0) - 1);
      double sv_hat = sv_s;
      if (gamma > 0) sv_hat = std::min(sv_s * (1 + gamma), std::max(sigma_ve_max_, sv_s));
      if (sv_hat > sv_s) {
        // Churn: raise the noise level to sigma_hat with fresh noise, evaluate there.
        context.noise().normal(z_);
        x_ve_ += (std::sqrt(sv_hat * sv_hat - sv_s * sv_s) * options_.s_noise) * z_;
        const double t_hat = std::min(sch.t_of_lambda(-std::log(sv_hat)), sch.t_max());
        eps_at(context, x_ve_, t_hat, sch.alpha(t_hat), eps_);
      } else {
        context.eps(x, t0, eps_);
      }
      if (!(t.sigma > 0)) {  // final step to sigma = 0: Euler
        euler_to(sv_hat, 0.0);
        break;
      }
      eps2_ = x_ve_ + (sv_t - sv_hat) * eps_;
      eps_at(context, eps2_, t1, t.alpha, eps2_);
      x_ve_ += (0.5 * (sv_t - sv_hat)) * (eps_ + eps2_);
      break;
    }
    case Method::dpm2:
      context.eps(x, t0, eps_);
      if (!(t.sigma > 0))
        euler_to(sv_s, 0.0);
      else
        dpm2_to(context, sv_s, s.lambda, sv_t);
      break;
    case Method::dpm2_ancestral: {
      context.eps(x, t0, eps_);
      const AncestralSplit a = ancestral_split(s, t, options_.eta);
      dpm2_to(context, sv_s, s.lambda, options_.eta > 0 ? a.dir / t.alpha : sv_t);
      if (a.noise > 0) {
        context.noise().normal(z_);
        x_ve_ += (options_.s_noise * a.noise / t.alpha) * z_;
      }
      break;
    }
    case Method::lms: {
      if (history_size_ > 0 && t0 != last_t1_) history_size_ = 0;  // not a continuation
      last_t1_ = t1;
      std::rotate(history_.begin(), history_.end() - 1, history_.end());
      std::rotate(history_sigma_.begin(), history_sigma_.begin() + (options_.order - 1),
                  history_sigma_.begin() + options_.order);
      context.eps(x, t0, history_[0]);
      history_sigma_[0] = sv_s;
      history_size_ = std::min(history_size_ + 1, static_cast<std::size_t>(options_.order));
      lms_step(sv_s, sv_t);
      break;
    }
  }
  x = t.alpha * x_ve_;
}

namespace builtin {

namespace {

using Method = KDiffusionSolver::Method;

const ParamSpec kEta{"eta", ParamType::number, 1.0,
                     "ancestral stochasticity, >= 0: sigma_up = eta * (the DDPM posterior std); 0 = deterministic"};
const ParamSpec kSNoise{"s_noise", ParamType::number, 1.0, "scale of the added noise, >= 0 (1 = exact)"};

double checked(const Params& p, const std::string& name) {
  const double v = p.number(name);
  if (!(v >= 0)) p.fail(name, "must be >= 0");
  return v;
}

std::unique_ptr<Solver> make(const Params& p, Method method) {
  KDiffusionSolver::Options o;
  o.method = method;
  if (method == Method::euler_ancestral || method == Method::dpm2_ancestral) {
    o.eta = checked(p, "eta");
    o.s_noise = checked(p, "s_noise");
  }
  if (method == Method::heun) {
    o.s_churn = checked(p, "s_churn");
    o.s_tmin = checked(p, "s_tmin");
    o.s_tmax = p.has("s_tmax") ? p.number("s_tmax") : std::numeric_limits<double>::infinity();
    if (!(o.s_tmax >= o.s_tmin)) p.fail("s_tmax", "must be >= s_tmin");
    o.s_noise = checked(p, "s_noise");
  }
  if (method == Method::lms) {
    const long order = p.integer("order");
    if (order < 1 || order > kMaxLmsOrder) p.fail("order", "must be 1 to 4, got " + std::to_string(order));
    o.order = static_cast<int>(order);
  }
  return std::make_unique<KDiffusionSolver>(o);
}

}  // namespace

void register_k_diffusion(Registry<Solver>& registry) {
  using nlohmann::json;
  registry.add({"euler",
                "k-diffusion / EDM Euler step in sigma_ve = sigma/alpha (first order; equals ddim eta = 0)",
                {},
                [](const Params& p, const BuildContext&) { return make(p, Method::euler); }});
  registry.add({"euler_ancestral",
                "k-diffusion Euler ancestral: Euler to sigma_down, then noise sigma_up (equals ddim with "
                "the same eta at s_noise = 1)",
                {kEta, kSNoise},
                [](const Params& p, const BuildContext&) { return make(p, Method::euler_ancestral); },
                {{{"eta", 1.0}}, {{"eta", 0.5}}}});
  registry.add({"heun",
                "EDM Algorithm 2: Heun's second-order method in sigma_ve with optional churn "
                "(stochastic when s_churn > 0)",
                {{"s_churn", ParamType::number, 0.0, "churn: gamma = min(s_churn/steps, sqrt(2) - 1), >= 0"},
                 {"s_tmin", ParamType::number, 0.0, "churn only where sigma_ve >= s_tmin"},
                 {"s_tmax", ParamType::number, nullptr, "churn only where sigma_ve <= s_tmax (infinity when not given)"},
                 kSNoise},
                [](const Params& p, const BuildContext&) { return make(p, Method::heun); },
                {json::object(), {{"s_churn", 10.0}}}});
  registry.add({"dpm2",
                "k-diffusion DPM-Solver-2-like step: midpoint in log sigma_ve (second order, 2 evaluations "
                "per step; the final step to 0 is Euler)",
                {},
                [](const Params& p, const BuildContext&) { return make(p, Method::dpm2); }});
  registry.add({"dpm2_ancestral",
                "k-diffusion DPM-2 ancestral: dpm2 to sigma_down, then noise sigma_up",
                {kEta, kSNoise},
                [](const Params& p, const BuildContext&) { return make(p, Method::dpm2_ancestral); }});
  registry.add({"lms",
                "k-diffusion linear multistep in sigma_ve, coefficients from the exact integral of the "
                "Lagrange basis over each variable step",
                {{"order", ParamType::integer, 4, "order, 1 to 4 (the first order - 1 steps use lower orders)"}},
                [](const Params& p, const BuildContext&) { return make(p, Method::lms); },
                {{{"order", 1}}, {{"order", 2}}, {{"order", 3}}, {{"order", 4}}}});
}

}  // namespace builtin

}  // namespace diffsde
